"""Writes to conversations: sessions, customer messages, assistant replies and the numbered event log.

Every event a client must not miss is written here, in the same transaction as the row it describes, with
the next `seq` of its conversation (taken under a row lock). Pushing it to sockets happens after commit and
may fail without losing anything: clients resume from the database.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import Contact, Tenant
from apps.audit import metrics
from apps.conversations import hooks
from apps.conversations.audit import reply_audit
from apps.conversations.channels import ChannelSender, channel_get, delivery_queue
from apps.conversations.events import event_append
from apps.conversations.identity import SessionClaims, SessionRevoked, verified_claims_current
from apps.conversations.locks import (
    conversation_and_message_lock,
    conversation_lock_existing,
    conversation_lock_find,
)
from apps.conversations.models import (
    AssistantTrace,
    Channel,
    Conversation,
    ConversationEvent,
    ConversationRating,
    HandoffReason,
    Message,
)
from apps.conversations.ownership import HandoffTrigger, transition_locked
from apps.conversations.selectors import session_conversation, session_opens

# Opening a widget session lives with the rest of the session rules; callers reach it from here too.
from apps.conversations.sessions import WidgetSession as WidgetSession
from apps.conversations.sessions import session_resume
from apps.conversations.sessions import widget_session_open as widget_session_open
from apps.conversations.snapshots import snapshot_discard_on_commit
from apps.core.errors import BadRequest, Conflict, MessageTooLong, NotFound, RateLimited
from apps.core.event_types import ConversationActivity
from apps.core.realtime import StaffStream, staff_publish
from apps.core.redis import state_key, state_redis
from apps.guardrails.pii import PIIFinding, RedactedText, pii_redact, pii_redact_with_findings
from apps.llm.routing import canary_assign

logger = logging.getLogger(__name__)

FINISHED = (Message.Status.COMPLETE, Message.Status.INTERRUPTED, Message.Status.FAILED)


# ---- conversations of sessions -----------------------------------------------------------------------------


def conversation_start(
    *, tenant: Tenant, contact: Contact | None = None, channel: str = Channel.CLI
) -> Conversation:
    channel_get(channel)  # a registered channel name, or BadRequest
    endpoint_id, canary_id, arm = canary_assign(tenant_id=tenant.id)
    return Conversation.objects.create(
        tenant=tenant,
        contact=contact,
        channel=channel,
        model_endpoint_id=endpoint_id,
        canary_id=canary_id,
        canary_arm=arm,
    )


def _conversation_lock(*, tenant: Tenant, claims: SessionClaims, from_widget: bool = True) -> Conversation:
    """The session's conversation, locked for numbering; created on the first message of a session.
    `from_widget=False` is for paths the server authenticated itself (the command line, an email reply
    matched by its reply token), whose claims are the conversation's own."""
    if from_widget and not verified_claims_current(claims):
        raise SessionRevoked()  # signed out, a rotated secret, or past its expiry
    conversation = conversation_lock_find(conversation_id=claims.conversation_id, tenant_id=tenant.id)
    if conversation is None:
        endpoint_id, canary_id, arm = canary_assign(tenant_id=tenant.id)
        try:
            with transaction.atomic():
                Conversation.objects.create(
                    id=claims.conversation_id,
                    tenant=tenant,
                    visitor_id=claims.visitor_id,
                    contact_id=claims.contact_id,
                    channel=Conversation.Channel.WIDGET,
                    model_endpoint_id=endpoint_id,
                    canary_id=canary_id,
                    canary_arm=arm,
                )
        except IntegrityError:
            pass  # created concurrently by the same visitor's other tab
        conversation = conversation_lock_find(conversation_id=claims.conversation_id, tenant_id=tenant.id)
    if conversation is None:
        raise NotFound("This conversation no longer exists. Reload the page to start a new one.")
    if from_widget and not session_opens(conversation, claims):
        # Another visitor's or customer's conversation, or a guest session ended by a sign-in.
        raise SessionRevoked()
    return conversation


# ---- customer messages -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Receipt:
    message: Message
    seq: int
    created: bool  # False: this client_msg_id was stored before, nothing new happened
    # Who owns the conversation once the message is stored: the assistant answers only if it does.
    owner: str = Conversation.Status.ASSISTANT
    # A worker will answer (a channel that does not stream); streaming channels answer in their process.
    answer_queued: bool = False


@dataclass(frozen=True)
class PreparedText:
    body: str
    redacted: RedactedText
    findings: list[PIIFinding]


def message_prepare(*, text: str) -> PreparedText:
    """Validates and redacts a customer's message: pure CPU (tens of milliseconds with NER), so callers in
    the event loop run it in a worker thread of its own, not the thread database calls share."""
    body = text.strip()
    if not body:
        raise BadRequest("The message is empty.")
    if len(body) > settings.WIDGET_MAX_MESSAGE_CHARS:
        limit = settings.WIDGET_MAX_MESSAGE_CHARS
        raise MessageTooLong(f"Messages are limited to {limit} characters; this one has {len(body)}.")
    redacted, findings = pii_redact_with_findings(body)  # fails closed: PIIUnavailable
    return PreparedText(body=body, redacted=redacted, findings=findings)


def message_receive(
    *,
    tenant: Tenant,
    claims: SessionClaims,
    client_msg_id: str,
    text: str | None = None,
    prepared: PreparedText | None = None,
) -> Receipt:
    """The widget's message: stored once (idempotent on client_msg_id) through the one inbound entry point
    (apps.conversations.channels.inbound), which starts a new turn. Give `text`, or `prepared` from
    `message_prepare`. The consumer runs the answer itself: the widget streams."""
    from apps.conversations.channels.inbound import channel_message_receive

    return channel_message_receive(
        tenant=tenant,
        channel=Channel.WIDGET,
        sender=ChannelSender(
            address=str(claims.visitor_id),
            contact_id=claims.contact_id,
            visitor_id=claims.visitor_id,
            claims=claims,
        ),
        conversation_key=str(claims.conversation_id),
        external_id=client_msg_id,
        text=text,
        prepared=prepared,
    )


def _staff_activity(conversation: Conversation, event: ConversationEvent) -> None:
    """Tells the tenant's agents that a conversation with (or waiting for) a person has news."""
    payload = ConversationActivity.model_validate(
        {
            "conversation_id": str(conversation.id),
            "seq": event.seq,
            "status": conversation.status,
            "agent_id": conversation.agent_id,
        }
    ).payload()
    tenant_id = conversation.tenant_id
    transaction.on_commit(lambda: staff_publish(tenant_id, payload, stream=StaffStream.AGENT))


def _turn_mark(conversation: Conversation, turn: int) -> None:
    """Tells answers running in other processes that this turn superseded theirs."""
    try:
        state_redis().set(state_key("turn", conversation.tenant_id, conversation.id), turn, ex=3600)
    except Exception as exc:
        logger.warning("turn marker not written: %s", exc.__class__.__name__)


def cli_message_receive(*, conversation: Conversation, client_msg_id: str, text: str) -> Receipt:
    """`manage.py ask`: the same inbound path for a conversation driven from the command line (the command
    runs the answer itself, streaming to the terminal)."""
    from apps.conversations.channels.inbound import channel_message_receive

    return channel_message_receive(
        tenant=conversation.tenant,
        channel=Channel.CLI,
        sender=ChannelSender(address="", contact_id=conversation.contact_id),
        conversation=conversation,
        external_id=client_msg_id,
        text=text,
    )


def email_receive(*, conversation_id: uuid.UUID, text: str, email_id: str) -> Receipt:
    """A customer's email reply (matched to its conversation by the handoff app), stored once per email.
    The assistant does not answer it here (`answer=False`): the caller hands the conversation to a
    person."""
    from apps.conversations.channels.inbound import channel_message_receive

    conversation = Conversation.objects.select_related("tenant").filter(id=conversation_id).first()
    if conversation is None:
        raise NotFound("There is no such conversation.")
    return channel_message_receive(
        tenant=conversation.tenant,
        channel=Channel.EMAIL,
        # The handoff app matched the reply token and checked the From address against this one.
        sender=ChannelSender(address=conversation.contact_email, contact_id=conversation.contact_id),
        conversation=conversation,
        external_id=email_id,
        text=text[: settings.WIDGET_MAX_MESSAGE_CHARS],
        answer=False,
    )


def handoff_request(
    *, tenant: Tenant, claims: SessionClaims, reason: str = "", trigger: HandoffTrigger | None = None
) -> ConversationEvent | None:
    """The customer asks for a person (the widget's button). None if one has it or is on the way.
    `reason` is the customer's own text: it may hold PII, so it never becomes the handoff's detail (shown
    to every agent and in reports); what they wrote to the assistant is in the case file."""
    trigger = trigger or HandoffTrigger(
        reason=HandoffReason.CUSTOMER_REQUEST, detail="asked with the button", priority=0
    )
    with transaction.atomic():
        conversation = _conversation_lock(tenant=tenant, claims=claims)
        if conversation.status in (Conversation.Status.WAITING, Conversation.Status.HUMAN):
            return None
        _handoff_requests_bound(conversation)
        return transition_locked(
            conversation,
            to=Conversation.Status.WAITING,
            event="handoff.requested",
            trigger=trigger,
            actor_kind=ConversationEvent.ActorKind.CUSTOMER,
            context={"requested_via": _handoff_request_via(conversation)},
        ).event


def _handoff_request_via(conversation: Conversation) -> str:
    """How the customer asked: by accepting the assistant's offer of a person ("offer": its latest reply
    made one) or with the widget's own button ("button"). Only the audit trail tells the two apart."""
    offered = (
        Message.objects.filter(conversation=conversation, role=Message.Role.ASSISTANT)
        .order_by("-created_at")
        .values_list("offer_handoff", flat=True)
        .first()
    )
    return "offer" if offered else "button"


def _handoff_requests_bound(conversation: Conversation) -> None:
    """Each handoff queues a case file and tells every agent: a customer asking and cancelling in a loop
    gets WIDGET_HANDOFFS_PER_WINDOW of them per window, then a `rate_limited` with when to ask again."""
    window = datetime.timedelta(seconds=settings.WIDGET_HANDOFF_WINDOW_SECONDS)
    since = timezone.now() - window
    recent = list(
        ConversationEvent.objects.filter(
            conversation=conversation, type="handoff.requested", created_at__gte=since
        )
        .order_by("-created_at")
        .values_list("created_at", flat=True)[: settings.WIDGET_HANDOFFS_PER_WINDOW]
    )
    if len(recent) < settings.WIDGET_HANDOFFS_PER_WINDOW:
        return
    wait = max(1, int((recent[-1] + window - timezone.now()).total_seconds()) + 1)
    minutes = max(1, round(wait / 60))
    raise RateLimited(
        f"You've asked for a person {len(recent)} times in a few minutes, so we can't ask again just yet. "
        f"Please try again in about {minutes} minute{'s' if minutes != 1 else ''}, or keep writing here.",
        retry_after=wait,
    )


def handoff_cancel(*, tenant: Tenant, claims: SessionClaims) -> ConversationEvent | None:
    """The customer would rather go on with the assistant than wait; None if nobody was waiting."""
    with transaction.atomic():
        conversation = _conversation_lock(tenant=tenant, claims=claims)
        if conversation.status != Conversation.Status.WAITING:
            return None
        return transition_locked(
            conversation,
            to=Conversation.Status.ASSISTANT,
            event="handoff.cancelled",
            actor_kind=ConversationEvent.ActorKind.CUSTOMER,
        ).event


def contact_email_leave(*, tenant: Tenant, claims: SessionClaims, email: str) -> ConversationEvent:
    """The customer leaves an email to be answered at when nobody can answer live; listeners (the handoff
    app) open a ticket in the same transaction."""
    address = email.strip()
    try:
        validate_email(address)
    except ValidationError:
        raise BadRequest("That doesn't look like an email address.") from None
    if len(address) > 254:
        raise BadRequest("That email address is too long.")
    with transaction.atomic():
        conversation = _conversation_lock(tenant=tenant, claims=claims)
        conversation.contact_email = address
        conversation.save(update_fields=["contact_email", "updated_at"])
        event = event_append(
            conversation,
            "handoff.email_saved",
            data={"email": email_masked(address)},
            actor_kind=ConversationEvent.ActorKind.CUSTOMER,
        )
        for listener in hooks.email_listeners():
            listener(conversation, address)
    return event


def email_masked(address: str) -> str:
    """m***@example.com: enough for the customer to recognise their address, not enough to leak it."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"


def rating_check(*, tenant: Tenant, claims: SessionClaims) -> None:
    """Raises unless the session's conversation can be rated now: resolved, and its episode not rated yet.
    A cheap read before any work on the comment (re-checked under the lock when it is stored)."""
    conversation = session_conversation(tenant=tenant, claims=claims)
    if conversation is None or conversation.status != Conversation.Status.RESOLVED:
        raise Conflict("You can rate the conversation once it is resolved.")
    if ConversationRating.objects.filter(conversation=conversation, episode=conversation.episode).exists():
        raise Conflict("You've rated this conversation already. Thank you!")


def rating_comment_redact(*, comment: str) -> str:
    """The comment as stored: trimmed, bounded and redacted (pure CPU: callers in the event loop run it in
    a worker thread of its own)."""
    text = comment.strip()[:2000]
    return str(pii_redact(text)) if text else ""


def rating_record(
    *,
    tenant: Tenant,
    claims: SessionClaims,
    score: int,
    comment: str = "",
    redacted_comment: str | None = None,
) -> ConversationRating:
    """The customer rates the episode just resolved, once (a second rating of it is a Conflict). Give
    `comment`, or `redacted_comment` from `rating_comment_redact`."""
    if not 1 <= score <= 5:
        raise BadRequest("Ratings go from 1 to 5.")
    if redacted_comment is None:
        rating_check(tenant=tenant, claims=claims)
        redacted_comment = rating_comment_redact(comment=comment)
    redacted = redacted_comment
    with transaction.atomic():
        conversation = _conversation_lock(tenant=tenant, claims=claims)
        if conversation.status != Conversation.Status.RESOLVED:
            raise Conflict("You can rate the conversation once it is resolved.")
        # The agent who last wrote in this episode (an earlier episode's agent did not resolve this one).
        resolver = (
            Message.objects.filter(
                conversation=conversation, role=Message.Role.AGENT, turn__gte=conversation.episode_turn
            )
            .order_by("-created_at")
            .values_list("author_id", flat=True)
            .first()
        )
        try:
            with transaction.atomic():
                rating = ConversationRating.objects.create(
                    tenant=tenant,
                    conversation=conversation,
                    episode=conversation.episode,
                    score=score,
                    comment=redacted,
                    agent_id=resolver,
                )
        except IntegrityError:
            raise Conflict("You've rated this conversation already. Thank you!") from None
        event_append(
            conversation,
            "csat.recorded",
            data={"score": score},
            actor_kind=ConversationEvent.ActorKind.CUSTOMER,
        )
        slug = tenant.slug
        transaction.on_commit(lambda: metrics.rating_count(tenant=slug, score=score))
    return rating


# ---- assistant replies -----------------------------------------------------------------------------------


def reply_start(
    *, conversation_id: uuid.UUID, turn: int, retry_of: uuid.UUID | None = None
) -> Message | None:
    """A new streaming reply for `turn`, or None if a newer customer message has superseded the turn."""
    with transaction.atomic():
        conversation = conversation_lock_existing(conversation_id=conversation_id)
        if conversation.turn != turn or conversation.status != Conversation.Status.ASSISTANT:
            return None  # superseded, or a person has the conversation (CONTRACTS I6)
        if retry_of is not None:
            latest = (
                Message.objects.filter(conversation=conversation, role=Message.Role.ASSISTANT)
                .order_by("-created_at")
                .first()
            )
            if (
                latest is None
                or latest.id != retry_of
                or latest.status
                not in (
                    Message.Status.INTERRUPTED,
                    Message.Status.FAILED,
                )
            ):
                raise Conflict("Only the latest interrupted or failed answer can be tried again.")
        message = Message.objects.create(
            tenant_id=conversation.tenant_id,
            conversation=conversation,
            role=Message.Role.ASSISTANT,
            status=Message.Status.STREAMING,
            via=conversation.channel,
            turn=turn,
            heartbeat_at=timezone.now(),
        )
        event_append(conversation, "assistant.started", message=message, data={"turn": turn})
    return message


def reply_heartbeat(*, message: Message, partial_text: str) -> None:
    """Keeps the partial text in the database about once a second, so a crash loses at most that much."""
    Message.objects.filter(id=message.id, status=Message.Status.STREAMING).update(
        text=partial_text, heartbeat_at=timezone.now()
    )


@dataclass(frozen=True)
class ReplyOutcome:
    status: str  # a Message.Status value
    text: str
    text_redacted: str = ""
    citations: list[dict[str, Any]] | None = None
    abstained: bool = False
    offer_handoff: bool = False
    error_code: str = ""
    guardrail_reasons: tuple[str, ...] = ()
    timings: dict[str, float] | None = None
    model: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    # The guardrail decisions behind it, for the audit trail (apps.conversations.audit.reply_audit): the
    # input checks' refusal ("injection" or "abuse"), why it abstained and the best passage's similarity,
    # and the reason codes of each model sentence removed as unsupported.
    refused: str = ""
    abstain_reason: str = ""
    top_similarity: float | None = None
    unsupported_removed: tuple[tuple[str, ...], ...] = ()


EVENT_FOR_STATUS = {
    Message.Status.COMPLETE: "assistant.completed",
    Message.Status.INTERRUPTED: "assistant.interrupted",
    Message.Status.FAILED: "assistant.failed",
    Message.Status.SUPERSEDED: "assistant.superseded",
}


def reply_finish(*, message: Message, outcome: ReplyOutcome) -> Message:
    """Saves the reply's final state and its event, once. A reply whose turn was superseded meanwhile is
    saved as superseded instead: the customer has already moved on (I2: never a stale answer as final)."""
    with transaction.atomic():
        conversation, current = conversation_and_message_lock(
            conversation_id=message.conversation_id, message_id=message.id
        )
        if current.status != Message.Status.STREAMING:
            return current  # finished already (e.g. swept as interrupted after a stall)
        status = outcome.status
        if status == Message.Status.COMPLETE and conversation.turn != current.turn:
            status = Message.Status.SUPERSEDED
        elif conversation.status != Conversation.Status.ASSISTANT:
            status = Message.Status.INTERRUPTED  # a person took over: never stored as the final answer
        current.status = status
        current.text = outcome.text
        current.text_redacted = outcome.text_redacted
        current.citations = outcome.citations or []
        current.abstained = outcome.abstained
        current.offer_handoff = outcome.offer_handoff
        current.error_code = outcome.error_code
        current.guardrail_reasons = list(outcome.guardrail_reasons)
        current.timings = outcome.timings or {}
        current.model = outcome.model
        current.prompt_tokens = outcome.prompt_tokens
        current.completion_tokens = outcome.completion_tokens
        current.heartbeat_at = None
        current.save()
        data: dict[str, Any] = {}
        if status in (Message.Status.INTERRUPTED, Message.Status.FAILED):
            data = {"code": outcome.error_code or "interrupted", "retryable": True}
        event_append(conversation, EVENT_FOR_STATUS[Message.Status(status)], message=current, data=data)
        if status == Message.Status.COMPLETE and current.text:
            # A channel that does not stream gets the final answer as one message, after commit.
            delivery_queue(message=current, conversation=conversation)
        snapshot_discard_on_commit(
            tenant_id=current.tenant_id, conversation_id=current.conversation_id, message_id=current.id
        )
        reply_audit(message=current, outcome=outcome)  # last: the audit chain's lock follows the row locks
    return current


def trace_record(
    *,
    message: Message,
    prompt: list[dict[str, str]],
    retrieval: dict[str, Any],
    input_check: dict[str, Any],
    attempts: int = 0,
    endpoint: str = "",
) -> AssistantTrace:
    trace, _ = AssistantTrace.objects.update_or_create(
        message=message,
        defaults={
            "tenant_id": message.tenant_id,
            "prompt": prompt,
            "retrieval": retrieval,
            "input_check": input_check,
            "attempts": attempts,
            "endpoint": endpoint,
        },
    )
    return trace


def widget_socket_resume(*, tenant: Tenant, token: str) -> SessionClaims | None:
    """A socket's `hello`: the claims of a token whose session still stands (None otherwise), with the
    replies of dead processes in its conversation marked interrupted first, in one database round trip
    (the replay that follows reads them as interrupted)."""
    claims = session_resume(token=token, tenant=tenant)
    if claims is not None:
        replies_sweep_stale(conversation_id=claims.conversation_id)
    return claims


def replies_sweep_stale(*, conversation_id: uuid.UUID) -> int:
    """Marks replies whose writer stopped beating (its process died) as interrupted, keeping their text."""
    cutoff = timezone.now() - datetime.timedelta(seconds=settings.ASSISTANT_STALE_SECONDS)
    stale = list(
        Message.objects.filter(
            conversation_id=conversation_id, status=Message.Status.STREAMING, heartbeat_at__lt=cutoff
        ).values_list("id", flat=True)
    )
    swept = 0
    for message_id in stale:
        with transaction.atomic():
            conversation, message = conversation_and_message_lock(
                conversation_id=conversation_id, message_id=message_id
            )
            if message.status != Message.Status.STREAMING:
                continue
            message.status = Message.Status.INTERRUPTED
            message.error_code = "interrupted"
            message.heartbeat_at = None
            message.save(update_fields=["status", "error_code", "heartbeat_at", "updated_at"])
            event_append(
                conversation,
                "assistant.interrupted",
                message=message,
                data={"code": "interrupted", "retryable": True},
            )
            snapshot_discard_on_commit(
                tenant_id=message.tenant_id, conversation_id=conversation_id, message_id=message.id
            )
            swept += 1
            logger.warning("assistant reply %s interrupted: its writer stopped (stale heartbeat)", message_id)
    return swept


def cli_conversation_open(
    *, tenant: Tenant, customer: str | None, conversation_id: str | None
) -> Conversation:
    """`manage.py ask`: a conversation to continue (checked against the tenant and the customer), or a new
    one, anonymous or as an existing verified customer (the operator vouches, as a company's HMAC does)."""
    contact = None
    if customer is not None:
        contact = Contact.objects.for_tenant(tenant).filter(external_id=customer).first()
        if contact is None:
            raise NotFound(f"No customer with the external id {customer!r} in this company.")
    if conversation_id is not None:
        try:
            key = uuid.UUID(conversation_id)
        except ValueError:
            raise BadRequest(f"{conversation_id!r} is not a conversation id.") from None
        conversation = Conversation.objects.for_tenant(tenant).filter(id=key).first()
        if conversation is None:
            raise NotFound(f"No conversation {conversation_id} in this company.")
        if contact is not None and conversation.contact_id != contact.id:
            raise Conflict("That conversation belongs to another customer.")
        return conversation
    return conversation_start(tenant=tenant, contact=contact, channel=Conversation.Channel.CLI)
