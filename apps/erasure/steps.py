"""The steps of an erasure, in the order they run (docs/architecture/erasure.md, "Steps").

Each step deletes or scrubs one kind of data of the customer's scope and returns what it removed, per
kind. Each is idempotent: run again it finds nothing and returns zeros, which is what the verification
relies on. Order matters where one step reads what a later one deletes: the answer cache is found through
the customer's messages, and tool runs and knowledge gaps through the conversation ids, so conversations
and the contact go last.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable

from django.db.models import Q

from apps.accounts.models import Contact
from apps.conversations.answer_cache import question_normalize
from apps.conversations.models import (
    AssistantTrace,
    CachedAnswer,
    Conversation,
    ConversationEvent,
    ConversationRating,
    Delivery,
    Message,
)
from apps.core.erasure_registry import erasure_erasers
from apps.core.redis import state_redis
from apps.erasure.subjects import Scope
from apps.handoff.models import EmailThread, EmailThreadMessage, Handoff, Note, SentEmail, Ticket
from apps.knowledge.models import KnowledgeGap
from apps.tools.models import ToolRun
from apps.voice.models import VoiceClip

Counts = dict[str, int]
Step = Callable[[uuid.UUID, Scope], Counts]

REDIS_SCAN_COUNT = 1000
# The realtime state keys (apps.core.redis.state_key) all start so; every one names its tenant or subject.
REDIS_MATCH = "hd:*"


def _customer_messages(tenant_id: uuid.UUID, scope: Scope) -> Q:
    return Q(tenant_id=tenant_id, conversation_id__in=scope.conversations)


def _redis_tokens(tenant_id: uuid.UUID, scope: Scope) -> set[str]:
    """The key parts that name this customer: their conversation, visitor, contact and tool-run ids, and
    the hashed phone number the demo phone files its transcript under (apps.messaging.demo_phone)."""
    runs = ToolRun.objects.filter(tenant_id=tenant_id, conversation_ref__in=scope.conversations)
    tokens = {str(c) for c in scope.conversations} | {str(v) for v in scope.visitors}
    tokens |= {str(r) for r in runs.values_list("id", flat=True)}
    if scope.contact:
        tokens.add(str(scope.contact))
    tokens |= {hashlib.sha256(a.encode()).hexdigest()[:24] for a in scope.addresses}
    return tokens


def step_cache(tenant_id: uuid.UUID, scope: Scope) -> Counts:
    """Realtime state in Redis (partial replies being streamed, turn counters, owner and answer leases,
    tool-run wake-ups, the demo phone's transcript), and answers cached from the customer's questions.

    A cached answer holds the normalised redacted question: it is found by normalising each of the
    customer's messages the same way. Another customer asking the same words loses only a cache hit."""
    tokens = _redis_tokens(tenant_id, scope)
    client = state_redis()
    doomed = [
        key
        for key in client.scan_iter(match=REDIS_MATCH, count=REDIS_SCAN_COUNT)
        if tokens.intersection(key.decode(errors="replace").split(":"))
    ]
    removed_keys = int(client.delete(*doomed)) if doomed else 0
    texts = Message.objects.filter(_customer_messages(tenant_id, scope), role=Message.Role.CUSTOMER)
    questions = {
        question_normalize(t) for pair in texts.values_list("text", "text_redacted") for t in pair if t
    }
    questions.discard("")
    answers, _ = CachedAnswer.objects.filter(tenant_id=tenant_id, normalized__in=questions).delete()
    return {"cache_keys": removed_keys, "cached_answers": answers}


def step_knowledge_gaps(tenant_id: uuid.UUID, scope: Scope) -> Counts:
    """Questions the assistant could not answer quote the customer (redacted, but still their words)."""
    messages = Message.objects.filter(_customer_messages(tenant_id, scope)).values("id")
    gaps = KnowledgeGap.objects.filter(tenant_id=tenant_id).filter(
        Q(conversation_ref__in=scope.conversations) | Q(message_ref__in=messages)
    )
    deleted, _ = gaps.delete()
    return {"knowledge_gaps": deleted}


def step_tool_runs(tenant_id: uuid.UUID, scope: Scope) -> Counts:
    """Tool runs keep their tool, status and timings (reports and the audit trail count them), and lose
    everything the customer or their account put in them: arguments, results, the summary and who."""
    runs = ToolRun.objects.filter(tenant_id=tenant_id).filter(
        Q(conversation_ref__in=scope.conversations) | (Q(customer=scope.external_id) & ~Q(customer=""))
    )
    dirty = runs.filter(
        ~Q(arguments={}) | Q(result__isnull=False) | ~Q(arguments_raw="") | ~Q(summary="") | ~Q(customer="")
    )
    scrubbed = dirty.update(arguments={}, arguments_raw="", result=None, summary="", customer="")
    return {"tool_runs": scrubbed}


def step_voice(tenant_id: uuid.UUID, scope: Scope) -> Counts:
    clips = VoiceClip.objects.filter(tenant_id=tenant_id).filter(
        Q(conversation_id__in=scope.conversations)
        | Q(visitor_id__in=scope.visitors)
        | (Q(contact_id=scope.contact) if scope.contact else Q(pk__in=[]))
    )
    deleted, _ = clips.delete()
    return {"voice_clips": deleted}


def step_memory(tenant_id: uuid.UUID, scope: Scope) -> Counts:
    """Apps that register an eraser (apps.core.erasure_registry): the customer's remembered facts."""
    return {
        name: int(eraser(tenant_id, list(scope.conversations), scope.contact))
        for name, eraser in erasure_erasers().items()
    }


def step_handoff(tenant_id: uuid.UUID, scope: Scope) -> Counts:
    """Agents' notes, case files (they summarise the customer's words), email tickets and threads."""
    where = Q(tenant_id=tenant_id, conversation_id__in=scope.conversations)
    notes, _ = Note.objects.filter(where).delete()
    tickets = Ticket.objects.filter(where)
    emails = SentEmail.objects.filter(tenant_id=tenant_id, ticket__in=tickets).count()
    tickets_deleted = tickets.count()
    tickets.delete()
    threads = EmailThread.objects.filter(where)
    emails += EmailThreadMessage.objects.filter(tenant_id=tenant_id, thread__in=threads).count()
    threads_deleted = threads.count()
    threads.delete()
    handoffs = Handoff.objects.filter(where)
    case_files = handoffs.exclude(case_file={}).count()
    handoffs_deleted = handoffs.count()
    handoffs.delete()
    return {
        "notes": notes,
        "tickets": tickets_deleted,
        "email_threads": threads_deleted,
        "emails": emails,
        "handoffs": handoffs_deleted,
        "case_files": case_files,
    }


def step_messages(tenant_id: uuid.UUID, scope: Scope) -> Counts:
    """Messages (the original and the redacted text are columns of one row) with what hangs off them:
    the assistant's traces (the prompts that quote them), channel deliveries, the events naming them."""
    messages = Message.objects.filter(_customer_messages(tenant_id, scope))
    traces = AssistantTrace.objects.filter(tenant_id=tenant_id, message__in=messages).count()
    deliveries = Delivery.objects.filter(tenant_id=tenant_id, message__in=messages).count()
    count = messages.count()
    messages.delete()
    return {"messages": count, "assistant_traces": traces, "deliveries": deliveries}


def step_conversations(tenant_id: uuid.UUID, scope: Scope) -> Counts:
    where = Q(tenant_id=tenant_id, conversation_id__in=scope.conversations)
    events = ConversationEvent.objects.filter(where).count()
    ratings = ConversationRating.objects.filter(where).count()
    conversations = Conversation.objects.filter(tenant_id=tenant_id, id__in=scope.conversations)
    count = conversations.count()
    conversations.delete()
    return {"conversations": count, "events": events, "ratings": ratings}


def step_contact(tenant_id: uuid.UUID, scope: Scope) -> Counts:
    contacts = Contact.objects.filter(tenant_id=tenant_id).filter(
        Q(id=scope.contact) if scope.contact else Q(external_id=scope.external_id) & ~Q(external_id="")
    )
    deleted, _ = contacts.delete()
    return {"contacts": deleted}


# Every step that removes data, in order. "scope" (first) and "verify" (last) are the service's own.
DATA_STEPS: tuple[tuple[str, Step], ...] = (
    ("cache", step_cache),
    ("knowledge_gaps", step_knowledge_gaps),
    ("tool_runs", step_tool_runs),
    ("voice", step_voice),
    ("memory", step_memory),
    ("handoff", step_handoff),
    ("messages", step_messages),
    ("conversations", step_conversations),
    ("contact", step_contact),
)
SCOPE_STEP = "scope"
VERIFY_STEP = "verify"
STEP_NAMES: tuple[str, ...] = (SCOPE_STEP, *(name for name, _ in DATA_STEPS), VERIFY_STEP)
