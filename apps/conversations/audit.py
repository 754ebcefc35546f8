"""The conversation pipeline's rows in the audit trail (apps.audit.trail): who caused each numbered event,
what the guardrails decided about a turn, and every handoff a customer, the assistant or a rule started.

Each function writes at most one row, in the caller's transaction, and is called at the end of that
transaction's work (the chain lock is taken last, after the conversation's row lock). Rows hold ids,
counts, reason codes and scores: never what the customer or the assistant wrote, and never a matched word.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from apps.audit.models import AuditEvent
from apps.audit.trail import audit_record
from apps.conversations.models import HandoffReason, Message

if TYPE_CHECKING:
    from apps.conversations.ownership import Transition
    from apps.conversations.services import ReplyOutcome

ActorKind = AuditEvent.ActorKind

# Who stands behind a handoff trigger: the customer asked (with the button, in words, or by answering an
# email), a company rule matched, or the assistant's own checks decided. An agent's takeover is staff.
_TRIGGER_ACTOR: dict[str, str] = {
    HandoffReason.CUSTOMER_REQUEST: ActorKind.CUSTOMER,
    HandoffReason.EMAIL_REPLY: ActorKind.CUSTOMER,
    HandoffReason.TENANT_RULE: ActorKind.SYSTEM,
    HandoffReason.AGENT_TAKEOVER: ActorKind.STAFF,
}

# A message's author, by role, for the events that carry it.
_ROLE_ACTOR: dict[str, str] = {
    Message.Role.CUSTOMER: ActorKind.CUSTOMER,
    Message.Role.ASSISTANT: ActorKind.ASSISTANT,
    Message.Role.AGENT: ActorKind.STAFF,
}


def trigger_actor_kind(reason: str) -> str:
    """The actor kind of a handoff trigger's reason (the assistant's checks for any other reason)."""
    return _TRIGGER_ACTOR.get(reason, ActorKind.ASSISTANT)


def event_actor(*, message: Message | None, actor: Any, actor_kind: str | None) -> tuple[str, Any]:
    """(actor_kind, actor_id) of a conversation event: as the caller says; else staff for a user; else the
    author of the message it carries (an agent's reply names its agent); else the system."""
    actor_id = getattr(actor, "pk", None) if actor is not None else None
    if actor_kind:
        return actor_kind, actor_id
    if actor_id is not None:
        return ActorKind.STAFF, actor_id
    if message is not None:
        kind = _ROLE_ACTOR.get(message.role, ActorKind.SYSTEM)
        return kind, message.author_id if kind == ActorKind.STAFF else None
    return ActorKind.SYSTEM, None


def redaction_audit(*, message: Message, entity_types: Iterable[str]) -> None:
    """`guardrail.redact` for a customer message stored with PII replaced: how many of each type, and
    nothing when nothing was replaced."""
    counts = Counter(entity_types)
    if not counts:
        return
    audit_record(
        tenant_id=message.tenant_id,
        action="guardrail.redact",
        actor_kind=ActorKind.SYSTEM,
        target=message,
        data={"conversation_id": str(message.conversation_id), "counts": dict(sorted(counts.items()))},
    )


def reply_audit(*, message: Message, outcome: ReplyOutcome) -> int:
    """The guardrail decisions one reply's outcome carries, a row each: the input checks refused the
    customer's message, the assistant abstained, or the composer removed unsupported sentences.
    Returns how many rows were written (0 for an ordinary answer)."""
    base: dict[str, Any] = {"conversation_id": str(message.conversation_id), "turn": message.turn}
    rows: list[tuple[str, str, dict[str, Any]]] = []
    if outcome.refused:
        rows.append(
            (
                "guardrail.refuse",
                ActorKind.SYSTEM,
                {**base, "reason": outcome.refused, "codes": list(outcome.guardrail_reasons)},
            )
        )
    if outcome.abstained:
        data = {**base, "reason": outcome.abstain_reason or "low_confidence"}
        if outcome.top_similarity is not None:
            data["top_similarity"] = round(float(outcome.top_similarity), 4)
        rows.append(("guardrail.abstain", ActorKind.ASSISTANT, data))
    if outcome.unsupported_removed:
        data = {**base, "count": len(outcome.unsupported_removed)}
        codes = Counter(code for reasons in outcome.unsupported_removed for code in reasons)
        if codes:
            data["reasons"] = dict(sorted(codes.items()))
        rows.append(("guardrail.unsupported_removed", ActorKind.ASSISTANT, data))
    for action, kind, data in rows:
        audit_record(tenant_id=message.tenant_id, action=action, actor_kind=kind, target=message, data=data)
    return len(rows)


def handoff_audit(
    action: str,
    *,
    tenant_id: uuid.UUID,
    handoff: Any,
    conversation_id: uuid.UUID,
    actor: Any = None,
    actor_kind: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """A handoff's row (`handoff.request`, `handoff.escalate`, `handoff.cancel`), its target the handoff.
    The handoff app calls this: the handoff model lives above this app."""
    audit_record(
        tenant_id=tenant_id,
        action=action,
        actor=actor,
        actor_kind=actor_kind,
        target=handoff,
        data={"conversation_id": str(conversation_id), **(data or {})},
    )


def handoff_request_via(change: Transition) -> str:
    """How a handoff was asked for: the widget's button or the assistant's offer accepted (the request's
    context says which), the customer's words, their email reply, a company rule, or the assistant's
    other triggers (abstaining or failing in a row, a tool, a sensitive topic, an upset customer)."""
    reason = change.trigger.reason if change.trigger is not None else HandoffReason.CUSTOMER_REQUEST
    via = change.context.get("requested_via")
    if via:
        return str(via)
    if reason == HandoffReason.EMAIL_REPLY:
        return "email"
    if reason == HandoffReason.TENANT_RULE:
        return "rule"
    if reason == HandoffReason.CUSTOMER_REQUEST:
        return "words"
    return "trigger"


def handoff_request_audit(change: Transition, handoff: Any) -> None:
    """`handoff.request` for a handoff just opened by a customer, the assistant or a rule. An agent's
    takeover is a staff action, audited where it is made."""
    if change.actor_kind == ActorKind.STAFF:
        return
    handoff_audit(
        "handoff.request",
        tenant_id=handoff.tenant_id,
        handoff=handoff,
        conversation_id=change.conversation.id,
        actor_kind=change.actor_kind,
        data={
            "reason": handoff.reason,
            "via": handoff_request_via(change),
            "priority": handoff.priority,
            "team_id": str(handoff.team_id) if handoff.team_id else None,
        },
    )


def handoff_cancel_audit(change: Transition, handoff: Any) -> None:
    """`handoff.cancel`: nobody is waited for any more (the customer went back to the assistant, or their
    session ended), with how long the handoff had waited."""
    waited = (handoff.closed_at - handoff.created_at).total_seconds() if handoff.closed_at else None
    handoff_audit(
        "handoff.cancel",
        tenant_id=handoff.tenant_id,
        handoff=handoff,
        conversation_id=change.conversation.id,
        actor_kind=change.actor_kind,
        data={"reason": handoff.reason, "waited_seconds": round(waited) if waited is not None else None},
    )
