"""A customer planted in every place the desk keeps customer data, each value carrying one marker string,
and the scans that look for the marker afterwards in every column of every model and every Redis key.

Rows are made directly with the ORM rather than through each app's flow: the point is to have every kind
of row at once, with the marker where a customer's words or identifiers would be.
"""

from __future__ import annotations

import itertools
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import redis
from django.apps import apps
from django.conf import settings
from django.db import connection, models

from apps.accounts.models import Contact, Tenant, User
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
from apps.conversations.snapshots import partial_key, streaming_key
from apps.core.redis import state_key, state_redis
from apps.handoff.models import EmailThread, EmailThreadMessage, Handoff, Note, SentEmail, Ticket
from apps.knowledge.models import EMBEDDING_DIMENSIONS, KnowledgeGap
from apps.tools.models import ToolRun
from apps.voice.models import VoiceClip

_n = itertools.count(1)
REDIS_DATABASES = range(16)


def new_marker() -> str:
    """Letters and digits only, lower case: it survives the answer cache's normalisation unchanged."""
    return "zqx" + uuid.uuid4().hex


@dataclass
class Planted:
    marker: str
    contact: Contact
    visitor_id: uuid.UUID
    phone: str
    email: str
    conversations: list[Conversation] = field(default_factory=list)


def _vector() -> list[float]:
    return [1.0] + [0.0] * (EMBEDDING_DIMENSIONS - 1)


def plant_customer(tenant: Tenant, author: User, *, marker: str | None = None) -> Planted:
    """A verified customer with a widget conversation and a text-message conversation, and the marker in
    every place their data reaches."""
    m = marker or new_marker()
    n = next(_n)
    email = f"{m}@mail.example"
    phone = f"+44{m}"
    contact = Contact.objects.create(tenant=tenant, external_id=f"cust-{m}", name=f"Name {m}", email=email)
    visitor = uuid.uuid4()
    widget = Conversation.objects.create(
        tenant=tenant, visitor_id=visitor, contact=contact, contact_email=email, turn=1
    )
    sms = Conversation.objects.create(
        tenant=tenant,
        visitor_id=uuid.uuid4(),
        contact=contact,
        channel=Conversation.Channel.MESSAGING,
        channel_key=phone,
        channel_address=phone,
        turn=1,
    )
    planted = Planted(marker=m, contact=contact, visitor_id=visitor, phone=phone, email=email)
    planted.conversations = [widget, sms]
    for conv in (widget, sms):
        asked = Message.objects.create(
            tenant=tenant,
            conversation=conv,
            role=Message.Role.CUSTOMER,
            via=conv.channel,
            turn=1,
            client_msg_id=f"c-{n}-{conv.channel}",
            external_id=f"ext-{m}" if conv is sms else "",
            text=f"my account is {m} and my phone {phone}",
            text_redacted=f"my account is {m} and my phone <PHONE_NUMBER>",
        )
        answer = Message.objects.create(
            tenant=tenant,
            conversation=conv,
            role=Message.Role.ASSISTANT,
            via=conv.channel,
            turn=1,
            text=f"Account {m} has no open bill.",
            text_redacted=f"Account {m} has no open bill.",
        )
        ConversationEvent.objects.create(
            tenant=tenant, conversation=conv, seq=1, type="message", message=asked, data={"quote": m}
        )
        ConversationEvent.objects.create(
            tenant=tenant, conversation=conv, seq=2, type="note", data={"text": m}
        )
        AssistantTrace.objects.create(
            tenant=tenant,
            message=answer,
            prompt=[{"role": "user", "content": asked.text_redacted}],
            retrieval={"query": m},
        )
        ConversationRating.objects.create(tenant=tenant, conversation=conv, episode=1, score=2, comment=m)
        Handoff.objects.create(
            tenant=tenant,
            conversation=conv,
            status=Handoff.Status.RESOLVED,
            reason="customer_request",
            case_file={"summary": f"Customer {m} disputes a bill"},
        )
        Note.objects.create(tenant=tenant, conversation=conv, author=author, text=f"Called {m} back")
        ToolRun.objects.create(
            tenant=tenant,
            conversation_ref=conv.id,
            message_ref=asked.id,
            tool="bill_lookup",
            idempotency_key=f"idem-{uuid.uuid4().hex}",
            customer=contact.external_id,
            arguments={"account": m},
            arguments_raw=f'{{"account": "{m}"}}',
            status="done",
            result={"holder": m},
            summary=f"Bill of {m}",
        )
        KnowledgeGap.objects.create(
            tenant=tenant,
            question=asked.text_redacted,
            threshold=0.5,
            conversation_ref=conv.id,
            message_ref=asked.id,
        )
        CachedAnswer.objects.create(
            tenant=tenant,
            knowledge_epoch=tenant.knowledge_epoch,
            style="quote" if conv is widget else "compose",
            normalized=question_normalize(asked.text_redacted),
            signature=m,
            embedding=_vector(),
            embedding_model="test",
            payload={"question": m},
        )
        client = state_redis()
        client.set(streaming_key(tenant.id, conv.id), str(answer.id), ex=600)
        client.set(partial_key(tenant.id, conv.id, answer.id), f"partial {m}", ex=600)
        client.set(state_key("turn", tenant.id, conv.id), 1, ex=600)
    sms_answer = Message.objects.filter(conversation=sms, role=Message.Role.ASSISTANT).get()
    Delivery.objects.create(
        tenant=tenant, message=sms_answer, channel="messaging", provider_message_id=f"pm-{m}", last_error=m
    )
    ticket = Ticket.objects.create(tenant=tenant, number=n, conversation=widget, email=email)
    SentEmail.objects.create(tenant=tenant, message_id=uuid.uuid4(), ticket=ticket)
    thread = EmailThread.objects.create(tenant=tenant, conversation=sms, address=email, subject=f"Re: {m}")
    EmailThreadMessage.objects.create(
        tenant=tenant, thread=thread, rfc_message_id=f"{m}@mail.example", inbound=True
    )
    VoiceClip.objects.create(
        tenant=tenant,
        conversation_id=widget.id,
        visitor_id=visitor,
        contact=contact,
        status=VoiceClip.Status.DONE,
        audio_format="wav",
        size_bytes=64,
        transcript=f"this is {m}",
        transcript_redacted=f"this is {m}",
        audio=f"RIFF{m}".encode(),
        audio_kept=True,
    )
    _plant_memory(tenant, planted, widget)
    # The demo phone files the texts it received under the hashed number (apps.messaging.demo_phone).
    import hashlib

    demo_key = state_key("demo-phone", tenant.id, hashlib.sha256(phone.encode()).hexdigest()[:24])
    state_redis().rpush(demo_key, json.dumps({"text": f"hello {m}"}))
    return planted


def _plant_memory(tenant: Tenant, planted: Planted, widget: Conversation) -> None:
    """What the assistant remembers with consent: as the verified customer, and as the visitor they were."""
    from django.utils import timezone

    from apps.memory.models import MemoryConsent, MemoryFact

    source = Message.objects.filter(conversation=widget, role=Message.Role.CUSTOMER).get()
    for who in ({"contact": planted.contact}, {"visitor_id": planted.visitor_id}):
        MemoryConsent.objects.create(
            tenant=tenant, granted=True, wording="Remember?", version=1, given_at=timezone.now(), **who
        )
        MemoryFact.objects.create(
            tenant=tenant,
            kind=MemoryFact.Kind.PREFERENCE,
            key=f"prefers {planted.marker}",
            text=f"Prefers to be called {planted.marker}",
            source_message_id=source.id,
            source_conversation_id=widget.id,
            source_turn=1,
            **who,
        )


# --- scanning ----------------------------------------------------------------------------------------------


def _column_sql(field: models.Field[Any, Any]) -> str:
    column = connection.ops.quote_name(str(field.column))
    if isinstance(field, models.BinaryField):
        return f"encode({column}, 'escape')"
    return f"{column}::text"


def database_hits(needle: str) -> dict[str, int]:
    """Rows holding `needle` (case-insensitively), per "model.field": every concrete column of every
    installed model, cast to text in SQL."""
    hits: dict[str, int] = {}
    pattern = f"%{needle}%"
    with connection.cursor() as cursor:
        for model in apps.get_models(include_auto_created=True):
            if model._meta.proxy or not model._meta.managed:
                continue
            table = connection.ops.quote_name(str(model._meta.db_table))
            for fld in model._meta.local_concrete_fields:
                # Table and column names come from the models, quoted; the needle is a parameter.
                sql = f"SELECT count(*) FROM {table} WHERE {_column_sql(fld)} ILIKE %s"  # noqa: S608
                cursor.execute(sql, [pattern])
                found = cursor.fetchone()[0]
                if found:
                    hits[f"{model._meta.label}.{fld.name}"] = found
    return hits


def _values(client: Any, key: bytes) -> list[bytes]:
    """Everything stored under `key`, whatever its type, as bytes to search."""
    kind = client.type(key).decode()
    read: dict[str, Any] = {
        "string": lambda: [client.get(key)],
        "list": lambda: client.lrange(key, 0, -1),
        "hash": lambda: [b for pair in client.hgetall(key).items() for b in pair],
        "set": lambda: client.smembers(key),
        "zset": lambda: client.zrange(key, 0, -1),
        "stream": lambda: [repr(entry).encode() for entry in client.xrange(key)],
    }
    return [bytes(v) for v in read[kind]() if v] if kind in read else []


def redis_hits(needle: str) -> list[str]:
    """Keys (as "db/key") whose name or value holds `needle`, in every database of the test Redis."""
    found: list[str] = []
    raw = needle.lower().encode()
    for db in REDIS_DATABASES:
        client = redis.Redis.from_url(f"{settings.REDIS_URL}/{db}")
        try:
            for key in client.scan_iter(count=1000):
                if raw in key.lower() or any(raw in value.lower() for value in _values(client, key)):
                    found.append(f"{db}/{key.decode(errors='replace')}")
        finally:
            client.close()
    return found
