"""When a conversation goes to a person (docs/architecture/handoff.md, "Triggers").

Before an answer (`turn_trigger`): the customer asks for a person in words, sounds upset, raises a
sensitive topic the company hands to a person (Tenant.handoff_topics), or a company rule (a topic, the
customer's tier) says a person handles it.
After an answer (`after_answer_trigger`): the assistant could not answer (abstained, or failed: the
knowledge base unreachable) several times in a row, a tool failed, or a change waits for an agent's
approval. A model that is down no longer strands anyone: answers quote the policy without it and offer a
person (answering/pipeline.py); replies stored as failed with `llm_unavailable` by earlier versions still
escalate at once.
The widget's "Talk to a person" button is the other way in (services.handoff_request).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from django.conf import settings

from apps.conversations import hooks
from apps.conversations.models import Conversation, HandoffReason, Message
from apps.conversations.ownership import HandoffTrigger
from apps.conversations.selectors import turn_handed_back
from apps.guardrails.pii import RedactedText
from apps.guardrails.sentiment import human_requested, mood, sensitive_topic
from apps.tools.models import Approval, RunStatus, ToolRun

HANDOVER_TEXT = {
    HandoffReason.CUSTOMER_REQUEST: (
        "Of course. I'm bringing in a person from our team; they'll see everything we've discussed, "
        "so you won't have to repeat yourself."
    ),
    HandoffReason.SENSITIVE: (
        "I'm sorry you're dealing with this. A person from our team should help you with it, so I'm "
        "bringing one in now. They'll see what you've told me."
    ),
    HandoffReason.ANGRY: (
        "I'm sorry this has been frustrating. I'm bringing in a person from our team who can sort it out "
        "with you; they'll see everything so far."
    ),
    HandoffReason.TENANT_RULE: (
        "A person from our team looks after this, so I'm bringing one in now. They'll see everything so far."
    ),
}


# Tool failures the customer can fix by asking again differently: offered a person, not handed off.
CUSTOMER_FIXABLE = frozenset({"not_found", "invalid_plan", "same_plan"})


def handover_text(trigger: HandoffTrigger) -> str:
    return HANDOVER_TEXT.get(HandoffReason(trigger.reason), HANDOVER_TEXT[HandoffReason.TENANT_RULE])


def turn_trigger(*, conversation_id: uuid.UUID, question: RedactedText) -> HandoffTrigger | None:
    """A reason to hand this turn to a person before the assistant answers it, or None."""
    conversation = (
        Conversation.objects.filter(id=conversation_id)
        .select_related("tenant", "contact")
        .only("tenant__handoff_topics", "contact__tier")
        .first()
    )
    if conversation is None:
        return None
    if human_requested(question):
        return HandoffTrigger(reason=HandoffReason.CUSTOMER_REQUEST, detail="asked in words")
    # Only the topics this company hands to a person: a lawsuit question is everyday business for some.
    topic = sensitive_topic(question, enabled=conversation.tenant.handoff_topics)
    if topic is not None:
        return HandoffTrigger(reason=HandoffReason.SENSITIVE, detail=topic, priority=1)
    feeling = mood(question)
    if feeling.angry:
        return HandoffTrigger(reason=HandoffReason.ANGRY, detail=", ".join(feeling.signals[:5]), priority=1)
    tier = conversation.contact.tier if conversation.contact else ""
    for check in hooks.rule_checks():
        trigger = check(conversation.tenant_id, tier, str(question))
        if trigger is not None:
            return trigger
    return None


def after_answer_trigger(*, message: Message, tools: Sequence[ToolRun]) -> HandoffTrigger | None:
    """A reason to hand the conversation to a person now that this answer is stored, or None."""
    for run in tools:
        if run.status == RunStatus.AWAITING_APPROVAL and run.approval == Approval.AGENT:
            return HandoffTrigger(reason=HandoffReason.TOOL_APPROVAL, detail=run.tool, priority=1)
    for run in tools:
        # A mistyped order number is the customer's to fix (the answer says so and offers a person); a
        # business system that is down, slow or broken is not.
        if run.status == RunStatus.FAILED and run.error_code not in CUSTOMER_FIXABLE:
            return HandoffTrigger(reason=HandoffReason.TOOL_FAILED, detail=f"{run.tool}: {run.error_code}")
    limit = settings.HANDOFF_AFTER_UNANSWERED
    if limit and (message.abstained or message.status == Message.Status.FAILED):
        recent = _recent_outcomes(message, limit)
        run_detail = f"{limit} answers in a row"
        if len(recent) == limit and all(
            abstained or status == Message.Status.FAILED for status, abstained in recent
        ):
            failed = any(status == Message.Status.FAILED for status, _ in recent)
            reason = HandoffReason.ASSISTANT_FAILED if failed else HandoffReason.ASSISTANT_ABSTAINED
            if message.error_code == "llm_unavailable":
                # The model is down (its retries and the circuit breaker are behind this): the first
                # failure offers a person and a retry (CONTRACTS §3); failing again brings one in.
                return HandoffTrigger(reason=HandoffReason.LLM_UNAVAILABLE, detail=run_detail, priority=1)
            return HandoffTrigger(reason=reason, detail=run_detail)
    return None


def _recent_outcomes(message: Message, limit: int) -> list[tuple[str, bool]]:
    """The last `limit` final answers of the current episode since people last gave the conversation back,
    newest first: (status, abstained). Answers from before a person looked at it do not count again."""
    episode_turn = (
        Conversation.objects.filter(id=message.conversation_id).values_list("episode_turn", flat=True).first()
        or 0
    )
    rows = (
        Message.objects.filter(
            conversation_id=message.conversation_id,
            role=Message.Role.ASSISTANT,
            turn__gte=episode_turn,
            turn__gt=turn_handed_back(conversation_id=message.conversation_id),
            status__in=[Message.Status.COMPLETE, Message.Status.FAILED],
        )
        .order_by("-created_at")
        .values_list("status", "abstained")[:limit]
    )
    return list(rows)
