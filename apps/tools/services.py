"""Writes on tools: configuring a company's tools, turning a model's tool call into a run (or a recorded
refusal), approvals, and executing a run in a worker (docs/architecture/tools.md).

The model proposes; policy disposes. Nothing a model writes is trusted: the tool must exist, be enabled for
the company, have well-formed arguments that pass its schema, and act only for the conversation's verified
customer. Anything that changes data waits for an agent's approval or the customer's confirmation.

Staff writes (configuring, deciding a run) are audited actions in `actions.py`; the functions here keep their
names for callers. Every change of a run's state writes its audit row (`run_audit`) in the transaction of
the change.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import math
import uuid
from dataclasses import dataclass
from typing import Any

from celery import current_app
from django.db import IntegrityError, transaction
from django.utils import timezone
from pydantic import ValidationError

from apps.accounts.models import Tenant, User
from apps.audit import metrics
from apps.audit.models import AuditEvent
from apps.audit.trail import audit_record
from apps.core.errors import BadRequest
from apps.guardrails.pii import pii_redact
from apps.tools.hooks import run_changed
from apps.tools.hosts import allowed_host_parse
from apps.tools.models import (
    MAX_EXAMPLE_CHARS,
    MAX_TENANT_EXAMPLES,
    AdapterKind,
    Approval,
    RunStatus,
    TenantTool,
    ToolConnection,
    ToolRun,
)
from apps.tools.registry import ToolSpec, tool_spec

logger = logging.getLogger(__name__)

MAX_CALLS_PER_ANSWER = 3
MAX_SECRET_CHARS = 256  # sealed, it must still fit ToolConnection.auth_secret
# What the customer is told when a call is refused; never the model's text or the schema's internals.
REFUSALS = {
    "unknown_tool": "I tried to use something I don't have, so I didn't do anything.",
    "not_allowed": "That's not something I can do here, so I didn't do anything.",
    "malformed_arguments": "I couldn't read my own request properly, so I didn't do anything.",
    "invalid_arguments": "Something in that request wasn't valid, so I didn't do anything.",
    "identity_required": (
        "I can only look at account details once you're signed in on our website. "
        "Please sign in and ask again, or I can connect you with a person."
    ),
    "too_many_calls": "That was more than I can do at once, so I stopped.",
    "not_relevant": "",  # the policies answer the question; the customer is told nothing about it
}
FAILURES = {
    "not_found": (
        "I couldn't find that on your account. Please check the number, or I can connect you with a person."
    ),
    "unavailable": "Our account system isn't answering right now. I can connect you with a person instead.",
    "rate_limited": "Our account system is busy right now. I can connect you with a person instead.",
    "timeout": "Our account system took too long to answer. I can connect you with a person instead.",
    "invalid_plan": "That plan isn't one you can switch to. I can list the plans on sale for you.",
    "same_plan": "You're already on that plan, so nothing changed.",
}
CANCELLED_BY_CUSTOMER = "OK, I've cancelled that. Nothing was changed."
DECLINED_BY_AGENT = "A colleague declined this request, so nothing was changed."
GENERIC_FAILURE = "That didn't work, and nothing was changed. I can connect you with a person instead."


@dataclass(frozen=True)
class ToolCallRequest:
    """A tool call as the model wrote it: nothing here is trusted yet."""

    call_id: str
    name: str
    arguments: str  # JSON text


# ---- configuration -----------------------------------------------------------------------------------


def tool_configure(
    *,
    tenant: Tenant,
    name: str,
    enabled: bool,
    approval: str | None = None,
    examples: list[str] | None = None,
    actor: User | None = None,
    as_operator: bool = False,
) -> TenantTool:
    """`examples`: the company's own example requests for the tool (None keeps the stored ones). An audited
    action (actions.ToolConfigure); imported on call, as it builds on this module."""
    from apps.tools import actions

    return actions.ToolConfigure(
        tenant=tenant,
        actor=actor,
        name=name,
        enabled=enabled,
        approval=approval,
        examples=examples,
        as_operator=as_operator,
    ).execute()


def _examples_clean(examples: list[str]) -> list[str]:
    cleaned = list(dict.fromkeys(" ".join(e.split()) for e in examples if e.strip()))
    if len(cleaned) > MAX_TENANT_EXAMPLES:
        raise BadRequest(f"A tool takes at most {MAX_TENANT_EXAMPLES} example requests.")
    if any(len(e) > MAX_EXAMPLE_CHARS for e in cleaned):
        raise BadRequest(f"An example request may be at most {MAX_EXAMPLE_CHARS} characters long.")
    # Embedded when the assistant chooses a tool (STYLE rule 11): redacted like anything else embedded.
    return [str(pii_redact(e)) for e in cleaned]


def _allowed_hosts_normalise(entries: list[str]) -> list[str]:
    """The operator's allow-list entries as stored: each `host[:port]` / `[v6][:port]` once, sorted."""
    normalised = set()
    for entry in entries:
        if not entry.strip():
            continue
        try:
            normalised.add(str(allowed_host_parse(entry)))
        except ValueError as exc:
            raise BadRequest(f"The allowed host {entry.strip()} is not valid: {exc}.") from None
    return sorted(normalised)


def tool_connection_configure(
    *,
    tenant: Tenant,
    adapter: str,
    base_url: str = "",
    auth_secret: str | None = None,
    timeout_seconds: float = 10.0,
    allowed_hosts: list[str] | None = None,
    actor: User | None = None,
    as_operator: bool = False,
) -> ToolConnection:
    """`auth_secret=None` keeps the stored secret (forms never render it back). An audited action
    (actions.ToolConnectionConfigure)."""
    from apps.tools import actions

    return actions.ToolConnectionConfigure(
        tenant=tenant,
        actor=actor,
        adapter=adapter,
        base_url=base_url,
        auth_secret=auth_secret,
        timeout_seconds=timeout_seconds,
        allowed_hosts=allowed_hosts,
        as_operator=as_operator,
    ).execute()


# ---- proposals ---------------------------------------------------------------------------------------


def _idempotency_key(
    *,
    tenant: Tenant,
    conversation_ref: uuid.UUID | None,
    message_ref: uuid.UUID | None,
    index: int,
    name: str,
    arguments: str,
) -> str:
    material = f"{tenant.id}|{conversation_ref}|{message_ref}|{index}|{name}|{arguments}"
    return hashlib.sha256(material.encode()).hexdigest()


def _canonical(arguments: dict[str, Any]) -> str:
    return json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)


def tool_call_propose(
    *,
    tenant: Tenant,
    call: ToolCallRequest,
    index: int,
    customer: str | None,
    conversation_ref: uuid.UUID | None = None,
    message_ref: uuid.UUID | None = None,
    question: str | None = None,
    answered_by_policies: bool = False,
) -> ToolRun:
    """Checks a model's tool call against the registry, the company's policy and the tool's schema, and
    records it: `refused` (nothing runs), `awaiting_approval` (a change waits for a person), or `queued`
    (a Celery worker runs it once this transaction commits).

    `question` (the customer's redacted words) and `answered_by_policies` let a read the question never
    asked for be dropped when the policies already answer it."""
    spec = tool_spec(call.name)
    refusal: str | None = None
    detail = ""
    arguments: dict[str, Any] = {}
    approval = Approval.NONE
    enabled = TenantTool.objects.for_tenant(tenant).filter(name=call.name, enabled=True).first()
    connected = ToolConnection.objects.filter(tenant=tenant).exclude(adapter=AdapterKind.NONE).exists()
    if index >= MAX_CALLS_PER_ANSWER:
        refusal = "too_many_calls"
    elif spec is None:
        refusal, detail = "unknown_tool", "no such tool"
    elif enabled is None or not connected:
        refusal, detail = "not_allowed", "not enabled for this company"
    else:
        approval = Approval(enabled.approval)
        if spec.changes_data and approval == Approval.NONE:
            approval = Approval.AGENT  # a stale row cannot let a change run unconfirmed
        try:
            parsed = json.loads(call.arguments or "{}")
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            refusal, detail = "malformed_arguments", "not a JSON object"
        else:
            try:
                validated = spec.input_model.model_validate(parsed)
            except ValidationError as exc:
                refusal = "invalid_arguments"
                detail = "; ".join(
                    f"{'.'.join(str(p) for p in err['loc']) or '(arguments)'}: {err['type']}"
                    for err in exc.errors()
                )[:300]
            else:
                arguments = _redacted_arguments(spec, validated.model_dump(mode="json"))
                if spec.needs_identity and not customer:
                    refusal, detail = "identity_required", "the customer is not verified"
                elif (
                    not spec.changes_data
                    and answered_by_policies
                    and question is not None
                    and not spec.mentioned_in(question)
                ):
                    refusal, detail = "not_relevant", "the question names nothing this tool does"
    canonical = _canonical(arguments) if refusal is None else call.arguments
    key = _idempotency_key(
        tenant=tenant,
        conversation_ref=conversation_ref,
        message_ref=message_ref,
        index=index,
        name=call.name,
        arguments=canonical,
    )
    if refusal is not None:
        status = RunStatus.REFUSED
        approval = Approval.NONE  # nothing was proposed: nobody is asked to approve it
    elif approval != Approval.NONE:
        status = RunStatus.AWAITING_APPROVAL
    else:
        status = RunStatus.QUEUED
    now = timezone.now()
    try:
        with transaction.atomic():
            run = ToolRun.objects.create(
                tenant=tenant,
                conversation_ref=conversation_ref,
                message_ref=message_ref,
                tool=call.name[:64],
                call_id=call.call_id[:100],
                idempotency_key=key,
                customer=customer or "",
                arguments=arguments,
                arguments_raw="" if refusal is None else str(pii_redact(call.arguments[:2000])),
                status=status,
                approval=approval,
                error_code=refusal or "",
                error_message=detail,
                summary=REFUSALS.get(refusal or "", ""),
                queued_at=now if status == RunStatus.QUEUED else None,
                finished_at=now if status == RunStatus.REFUSED else None,
                deliver_later=status == RunStatus.AWAITING_APPROVAL,
            )
            # The model proposed it: the assistant is the actor of the run's first state.
            run_audit(run, actor_kind=AuditEvent.ActorKind.ASSISTANT)
    except IntegrityError:
        # The same call proposed again (a repeated frame, a retried task): the first record stands.
        return ToolRun.objects.get(idempotency_key=key)
    if refusal is not None:
        run_count(run)
        logger.warning(
            "tool call %r in conversation %s refused: %s (%s)",
            call.name[:64],
            conversation_ref,
            refusal,
            detail,
        )
    else:
        logger.info("tool run %s (%s) %s", run.id, run.tool, run.status)
    if status == RunStatus.QUEUED:
        run_enqueue(run)
    run_changed(run)
    return run


def _redacted_arguments(spec: ToolSpec, arguments: dict[str, Any]) -> dict[str, Any]:
    for name in spec.free_text_fields:
        if isinstance(arguments.get(name), str):
            # llama.cpp's function-calling format HTML-escapes the prompt, and a small model copies the
            # entities (&#34;) into what it writes: free text is stored as the customer would read it.
            arguments[name] = str(pii_redact(html.unescape(arguments[name])))
    return arguments


def run_limits(spec: ToolSpec | None) -> tuple[int, int, int]:
    """Soft and hard time limits of a run's task, and its lease: all far below the broker's visibility
    timeout, so a running task is never redelivered while it still runs."""
    timeout = math.ceil(spec.timeout_seconds if spec else 10.0)
    soft = timeout + 5
    hard = timeout + 10
    return soft, hard, hard + 5


def run_enqueue(run: ToolRun) -> None:
    soft, hard, _ = run_limits(tool_spec(run.tool))
    run_id = str(run.id)

    def send() -> None:
        current_app.send_task(
            "apps.tools.tasks.tool_run_execute", args=[run_id], soft_time_limit=soft, time_limit=hard
        )

    # robust: a broker outage must not undo the stored run; recovery re-sends queued runs.
    transaction.on_commit(send, robust=True)


def tool_run_decide(
    *, run: ToolRun, approve: bool, actor: User | None = None, by_customer: bool = False, note: str = ""
) -> ToolRun:
    """An agent's approval or rejection, or the customer's confirmation (actions.ToolRunDecide). Exactly one
    decision counts: the second gets Conflict."""
    from apps.tools import actions

    decide = actions.ToolRunApprove if approve else actions.ToolRunReject
    kind = AuditEvent.ActorKind.CUSTOMER if by_customer else AuditEvent.ActorKind.STAFF
    run = decide(
        tenant=run.tenant, actor=actor, actor_kind=kind, run=run, by_customer=by_customer, note=note
    ).execute()
    logger.info(
        "tool run %s (%s) %s by %s",
        run.id,
        run.tool,
        "approved" if approve else "rejected",
        "the customer" if by_customer else f"agent {actor.pk if actor else '-'}",
    )
    return run


def tool_run_deliver_later(*, run: ToolRun) -> bool:
    """The answer stops waiting for this run; its result will be posted when it comes. False if the run
    finished in the meantime (the caller reads the result instead)."""
    waiting = bool(
        ToolRun.objects.filter(id=run.id)
        .exclude(status__in=[RunStatus.DONE, RunStatus.FAILED, RunStatus.REFUSED, RunStatus.REJECTED])
        .update(deliver_later=True, updated_at=timezone.now())
    )
    if waiting and run.status == RunStatus.QUEUED:
        # Still queued after the whole wait: the task message may have been lost (a broker outage when it
        # was sent). Sending it again is safe: execution is idempotent.
        run_enqueue(run)
    return waiting


def run_count(run: ToolRun) -> None:
    tool = run.tool if tool_spec(run.tool) is not None else "other"
    seconds = run.duration_ms / 1000 if run.duration_ms is not None else None
    metrics.tool_run_count(tenant=run.tenant.slug, tool=tool, status=run.status, seconds=seconds)


def run_audit_data(run: ToolRun) -> dict[str, Any]:
    """What an audit row says of a run: never its arguments or result (they may name the customer)."""
    return {
        "tool": run.tool,
        "run_id": run.id,
        "status": run.status,
        "attempt": run.attempts,
        "error_code": run.error_code or None,
    }


def run_audit(
    run: ToolRun, *, actor_kind: str, status: str | None = None, error_code: str | None = None
) -> None:
    """The audit row of a run's change of state ("tool_run.<status>"), written in the caller's transaction,
    the one that changes the run. `status`/`error_code` when the run in hand is not updated yet."""
    data = run_audit_data(run)
    if status is not None:
        data["status"] = status
    if error_code is not None:
        data["error_code"] = error_code or None
    audit_record(
        tenant_id=run.tenant_id,
        action=f"tool_run.{data['status']}",
        actor_kind=actor_kind,
        target_type="ToolRun",
        target_id=run.id,
        data=data,
    )
