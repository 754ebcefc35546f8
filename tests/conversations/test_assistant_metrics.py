"""What the operator sees at /metrics after real conversations: per-tenant time to first token, tokens,
replies by outcome, errors and abstentions."""

from __future__ import annotations

import anyio
import pytest
from django.test import Client

from apps.audit.metrics import metrics_reset
from tests.conversations.conftest import asession_for, widget_connect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.anyio]

FINAL = ("assistant.completed", "assistant.failed", "assistant.interrupted")


def _sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        body = line[len(name) + 1 : line.index("}")]
        found = dict(part.split("=", 1) for part in body.split(","))
        if all(found.get(k) == f'"{v}"' for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def _ask(tenant, text):
    session = await asession_for(tenant)
    widget, _ = await widget_connect(tenant, token=session.token)
    await widget.send({"type": "message", "text": text})
    final = await widget.until(lambda f: f["type"] in FINAL, timeout=30)
    await widget.close()
    return final


async def test_replies_errors_and_abstentions_are_counted_per_tenant(kb_tenant, fake_llm, settings):
    settings.METRICS_TOKEN = "scrape-token"
    scraper = Client(HTTP_AUTHORIZATION="Bearer scrape-token")
    metrics_reset()
    fake_llm.reply_text = "EU roaming is included [1]."
    await _ask(kb_tenant, "Is roaming in the European Union free?")
    await _ask(kb_tenant, "Can I bring my parrot to the opera?")
    fake_llm.behaviour = "error_500"
    await _ask(kb_tenant, "Is roaming in the European Union free?")
    from asgiref.sync import sync_to_async

    slug = kb_tenant.slug
    # Metrics are recorded just after the reply is stored (and pushed): poll briefly for the last one.
    for _ in range(50):
        text = (await sync_to_async(scraper.get)("/metrics")).content.decode()
        if _sample(text, "helpdesk_assistant_replies_total", tenant=slug, status="failed"):
            break
        await anyio.sleep(0.1)
    assert _sample(text, "helpdesk_assistant_replies_total", tenant=slug, status="complete") == 1
    assert _sample(text, "helpdesk_assistant_replies_total", tenant=slug, status="abstained") == 1
    assert _sample(text, "helpdesk_assistant_replies_total", tenant=slug, status="failed") == 1
    assert _sample(text, "helpdesk_assistant_abstentions_total", tenant=slug) == 1
    assert _sample(text, "helpdesk_errors_total", tenant=slug, code="llm_unavailable") == 1
    assert _sample(text, "helpdesk_assistant_time_to_first_token_seconds_count", tenant=slug) == 1
    from apps.conversations.models import Message

    reply = await Message.objects.aget(role="assistant", status="complete", abstained=False)
    assert (
        _sample(text, "helpdesk_llm_tokens_total", tenant=slug, kind="completion") == reply.completion_tokens
    )
    assert reply.completion_tokens > 0
    assert _sample(text, "helpdesk_llm_tokens_total", tenant=slug, kind="prompt") > 100
    assert _sample(text, "helpdesk_assistant_tokens_per_second_count", tenant=slug) == 1
