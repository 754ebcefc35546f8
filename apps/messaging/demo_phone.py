"""The demo's fake messaging provider, served by the product itself for `make run` (apps/demo/views.py,
/demo/phone/): a phone-style page where you write as the customer and read the company's answers.

It plays the provider's part of the contract and nothing more: what "the phone" sends goes through the real
signed inbound webhook path (signed here with the demo company's secret, verified by webhook_verify), and
the desk's answers arrive by the real outbound path (the delivery worker POSTs them to the provider API
below, with the company's bearer token). The phone's transcript lives in Redis, bounded, for a day.
Only on a development install (DEBUG): the views refuse otherwise.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from apps.accounts.models import Tenant
from apps.core.errors import BadRequest, Unauthorized
from apps.core.redis import state_key, state_redis
from apps.core.sealing import unseal
from apps.messaging import services
from apps.messaging.models import MessagingChannel
from apps.messaging.signing import phone_normalize, signature_compute

DEMO_SENDER = "+15550001111"
DEMO_PHONE = "+447700900123"
PROVIDER_PATH = "/demo/phone/provider/v1"
TRANSCRIPT_MAX = 200
TRANSCRIPT_TTL_SECONDS = 86400


def demo_channel_load(*, tenant: Tenant, site_url: str) -> MessagingChannel:
    """The demo company's messaging channel, pointing at this very server's fake provider. Secrets are
    made once and kept, so a reload changes nothing."""
    from urllib.parse import urlsplit

    parts = urlsplit(site_url)
    host = f"{parts.hostname}:{parts.port}" if parts.port else (parts.hostname or "127.0.0.1")
    existing = MessagingChannel.objects.filter(tenant=tenant).first()
    return services.messaging_channel_configure(
        tenant=tenant,
        enabled=True,
        base_url=site_url.rstrip("/") + PROVIDER_PATH,
        sender_id=DEMO_SENDER,
        inbound_secret=None if existing and existing.inbound_secret else services.inbound_secret_generate(),
        auth_token=None if existing and existing.auth_token else services.inbound_secret_generate(),
        allowed_hosts=[host],
    )


def _key(tenant: Tenant, phone: str) -> str:
    return state_key("demo-phone", tenant.id, hashlib.sha256(phone.encode()).hexdigest()[:24])


def _record(tenant: Tenant, phone: str, entry: dict[str, Any]) -> None:
    client = state_redis()
    key = _key(tenant, phone)
    pipe = client.pipeline()
    pipe.rpush(key, json.dumps(entry))
    pipe.ltrim(key, -TRANSCRIPT_MAX, -1)
    pipe.expire(key, TRANSCRIPT_TTL_SECONDS)
    pipe.execute()


def phone_transcript(*, tenant: Tenant, phone: str) -> list[dict[str, Any]]:
    number = phone_normalize(phone)
    if number is None:
        raise BadRequest("Type a phone number in international format, like +447700900123.")
    return [json.loads(raw) for raw in state_redis().lrange(_key(tenant, number), 0, -1)]


@dataclass(frozen=True)
class PhoneSent:
    message_id: str
    duplicate: bool


def phone_send(*, channel: MessagingChannel, phone: str, text: str) -> PhoneSent:
    """The customer's phone sends `text`: the provider signs a webhook and the desk's inbound path takes it,
    signature check included."""
    number = phone_normalize(phone)
    if number is None:
        raise BadRequest("Type a phone number in international format, like +447700900123.")
    provider_id = f"demo-{uuid.uuid4().hex[:16]}"
    body = json.dumps(
        {
            "message_id": provider_id,
            "from": number,
            "to": channel.sender_id,
            "text": text,
            "timestamp": int(time.time()),
        }
    ).encode()
    stamp = str(int(time.time()))
    signature = signature_compute(secret=unseal(channel.inbound_secret), timestamp=stamp, body=body)
    verified = services.webhook_verify(
        tenant_slug=channel.tenant.slug, timestamp=stamp, signature=signature, body=body
    )
    message, sender = services.inbound_parse(channel=verified, body=body)
    result = services.messaging_inbound_receive(channel=verified, message=message, phone=sender)
    if result.receipt.created:
        _record(
            channel.tenant, number, {"id": provider_id, "dir": "in", "text": text, "at": int(time.time())}
        )
    return PhoneSent(message_id=provider_id, duplicate=not result.receipt.created)


def provider_accept(*, channel: MessagingChannel, authorization: str, body: bytes) -> str:
    """The provider's `POST /messages`: checks our bearer token, keeps the message for the phone, answers
    with the provider's id."""
    expected = f"Bearer {unseal(channel.auth_token)}"
    if not hmac.compare_digest(authorization.encode(), expected.encode()):
        raise Unauthorized("The provider token does not match.")
    try:
        data = json.loads(body)
    except ValueError:
        raise BadRequest("The body is not JSON.") from None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), str) for k in ("to", "from", "text", "client_ref")
    ):
        raise BadRequest("A message needs to, from, text and client_ref.")
    number = phone_normalize(data["to"])
    if number is None:
        raise BadRequest("The recipient is not a phone number.")
    provider_id = f"demo-out-{hashlib.sha256(data['client_ref'].encode()).hexdigest()[:16]}"
    _record(
        channel.tenant,
        number,
        {"id": provider_id, "dir": "out", "text": data["text"], "at": int(time.time())},
    )
    return provider_id


def phone_delivered(*, channel: MessagingChannel, provider_ids: list[str]) -> int:
    """The phone shows these messages: the provider reports them delivered (a signed status webhook)."""
    done = 0
    for provider_id in provider_ids[:50]:
        body = json.dumps({"message_id": provider_id, "status": "delivered"}).encode()
        stamp = str(int(time.time()))
        signature = signature_compute(secret=unseal(channel.inbound_secret), timestamp=stamp, body=body)
        verified = services.webhook_verify(
            tenant_slug=channel.tenant.slug, timestamp=stamp, signature=signature, body=body
        )
        try:
            services.messaging_status_record(channel=verified, update=services.status_parse(body=body))
        except Exception:  # noqa: S112 (a report for a message the desk no longer knows: nothing to do)
            continue
        done += 1
    return done
