"""What the operator sees at /metrics after real conversations: per-tenant time to first token, tokens,
replies by outcome, errors, abstentions and the composed sentences shown or dropped by the support
check."""

from __future__ import annotations

import anyio
import pytest
from django.test import Client

from apps.audit.metrics import metrics_reset
from tests.conversations.conftest import (
    SUPPORTED_EU,
    WRONG_NUMBER,
    aanswers_configure,
    asession_for,
    model_composes,
    widget_connect,
)
from tests.fakes.openai_server import split_tokens

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
    await aanswers_configure(kb_tenant, style="compose")
    # One sentence the policy supports (shown) and one it does not (dropped).
    model_composes(fake_llm, f"{SUPPORTED_EU} {WRONG_NUMBER}")
    answered = await _ask(kb_tenant, "Is roaming in the European Union free?")
    assert answered["type"] == "assistant.completed"
    abstained = await _ask(kb_tenant, "Can I bring my parrot to the opera?")
    assert abstained["message"]["abstained"] is True
    fake_llm.behaviour = "error_500"
    # Another question (the first is in the answer cache now): quoted, with a note that the model is down.
    noted = await _ask(kb_tenant, "Within how many days can I return a device for a refund?")
    assert noted["type"] == "assistant.completed"
    settings.EMBEDDINGS_BASE_URL = "http://127.0.0.1:9/v1"  # retrieval down: a failed reply
    from apps.llm import embeddings

    embeddings._embedder.cache_clear()
    try:
        failed = await _ask(kb_tenant, "How much does roaming outside the EU cost?")
    finally:
        embeddings._embedder.cache_clear()
    assert failed["type"] == "assistant.failed"
    from asgiref.sync import sync_to_async

    slug = kb_tenant.slug
    # Metrics are recorded just after each reply is stored (and pushed), off the event loop, one family
    # after another: a later reply's may land before an earlier one's, so poll until the last family of
    # every reply is there (the assertions below then check the exact values).
    expected = [
        ("helpdesk_assistant_replies_total", {"status": "complete"}, 2),
        ("helpdesk_assistant_replies_total", {"status": "abstained"}, 1),
        ("helpdesk_assistant_replies_total", {"status": "failed"}, 1),
        ("helpdesk_errors_total", {"code": "llm_unavailable"}, 1),
        ("helpdesk_errors_total", {"code": "temporarily_unavailable"}, 1),
        ("helpdesk_composed_sentences_total", {"result": "dropped"}, 1),
    ]
    for _ in range(100):
        text = (await sync_to_async(scraper.get)("/metrics")).content.decode()
        if all(_sample(text, name, tenant=slug, **labels) >= n for name, labels, n in expected):
            break
        await anyio.sleep(0.1)
    assert _sample(text, "helpdesk_assistant_replies_total", tenant=slug, status="complete") == 2
    assert _sample(text, "helpdesk_assistant_replies_total", tenant=slug, status="abstained") == 1
    assert _sample(text, "helpdesk_assistant_replies_total", tenant=slug, status="failed") == 1
    assert _sample(text, "helpdesk_assistant_abstentions_total", tenant=slug) == 1
    assert _sample(text, "helpdesk_errors_total", tenant=slug, code="llm_unavailable") == 1
    assert _sample(text, "helpdesk_errors_total", tenant=slug, code="temporarily_unavailable") == 1
    # Every reply that showed the customer something had a first token: all but the failed one.
    assert _sample(text, "helpdesk_assistant_time_to_first_token_seconds_count", tenant=slug) == 3
    assert _sample(text, "helpdesk_composed_sentences_total", tenant=slug, result="shown") == 1
    assert _sample(text, "helpdesk_composed_sentences_total", tenant=slug, result="dropped") == 1
    from apps.conversations.models import Message

    reply = await Message.objects.aget(id=answered["message"]["id"])
    assert (
        _sample(text, "helpdesk_llm_tokens_total", tenant=slug, kind="completion") == reply.completion_tokens
    )
    assert reply.completion_tokens == len(split_tokens(f"{SUPPORTED_EU} {WRONG_NUMBER}"))
    assert _sample(text, "helpdesk_llm_tokens_total", tenant=slug, kind="prompt") == reply.prompt_tokens
    assert reply.prompt_tokens > 100
    assert _sample(text, "helpdesk_assistant_tokens_per_second_count", tenant=slug) == 1
