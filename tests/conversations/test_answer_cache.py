"""The answer cache (apps/conversations/answer_cache.py) on the real PostgreSQL+pgvector with the real
embedder: exact and neighbour hits, the signature that keeps "Zone 2" from getting "Zone 3"'s answer,
invalidation by every change to published knowledge, isolation by tenant and style, and the cap."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.accounts.models import Tenant
from apps.audit import metrics
from apps.conversations import answer_cache
from apps.conversations.answer_cache import (
    CacheHit,
    cache_lookup,
    cache_store,
    question_normalize,
    question_signature,
)
from apps.conversations.models import CachedAnswer
from apps.knowledge import ingestion
from apps.knowledge import services as kb
from apps.knowledge.models import Document, DocumentVersion
from apps.llm.embeddings import embedder
from tests.audit.exposition import parse
from tests.conversations.conftest import REFUND_POLICY, ROAMING_POLICY

pytestmark = pytest.mark.django_db

ZONE_2 = "How much does the Travel Pass cost in Zone 2?"
ZONE_3 = "How much does the Travel Pass cost in Zone 3?"
FAMILY = "helpdesk_answer_cache_total"


def _vector(text: str) -> list[float]:
    [vector] = embedder().embed([text])
    return vector


def _similarity(a: str, b: str) -> float:
    return sum(x * y for x, y in zip(_vector(a), _vector(b), strict=True))


def _payload(text: str) -> dict[str, Any]:
    return {"text": text, "evidence": [{"sentence_id": "s1", "text": text}], "citations": [1]}


def _store(
    tenant: Tenant, question: str, style: str = "quote", payload: dict[str, Any] | None = None
) -> None:
    cache_store(
        tenant=tenant,
        style=style,
        question=question,
        vector=_vector(question),
        payload=payload or _payload(f"answer to {question}"),
    )


def _lookup(tenant: Tenant, question: str, style: str = "quote") -> CacheHit | None:
    return cache_lookup(tenant=tenant, style=style, question=question, vector=_vector(question))


def _fresh(tenant: Tenant) -> Tenant:
    return Tenant.objects.get(id=tenant.id)


@pytest.fixture
def tenant(make_tenant: Any) -> Tenant:
    return make_tenant(name="Nimbus Telecom")


@pytest.fixture(autouse=True)
def _fresh_metrics() -> None:
    metrics.metrics_reset()


# --- normalising and signatures -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How much does the Travel Pass cost in Zone 2?", "how much does the travel pass cost in zone 2"),
        ("Hi! How do I cancel my contract? Thanks", "how do I cancel my contract please"),
        ("What's the fee for two SIMs?", "what is the fee for 2 sims"),
        ("Can I return it within fourteen   days,  thank you very much!", "can I return it within 14 days"),
        ("Is roaming free in the EU ?", "is roaming free in the eu"),
        ("I don't have a PIN", "I do not have a PIN"),
    ],
)
def test_normalising_ignores_what_does_not_change_the_question(a: str, b: str) -> None:
    assert question_normalize(a) == question_normalize(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Does it cost €10.50?", "Does it cost €1050?"),
        ("Roaming in Zone 2", "Roaming in Zone 3"),
        ("Is it thanks to the update?", "Is it to the update?"),  # "thanks" ends nothing here
    ],
)
def test_normalising_keeps_what_does(a: str, b: str) -> None:
    assert question_normalize(a) != question_normalize(b)


@pytest.mark.parametrize(
    ("text", "signature"),
    [
        (ZONE_2, "2|travel pass|zone 2"),
        ("how much does the travel pass cost in zone two", "2|travel pass|zone 2"),
        ("Can I return my phone after 30 days?", "30 day|~after"),
        ("Can I pause for one month or one year?", "1 month|1 year"),
        ("What if my roaming charges reach €60?", "eur 60"),
        ("What if my roaming charges reach 60 euros?", "eur 60"),
        ("Is the surcharge €2.00 per GB?", "eur 2|gb"),
        ("How do I get a PAC code for Roam Like Home?", "pac|roam like home"),
        ("Does my Unlimited Max plan work with 5G?", "5|5g|max plan|unlimited max"),
        ("What does data cost without a Travel Pass?", "travel pass|~without"),
        ("How do I turn roaming off?", "~off"),
        ("I can't connect", "~not"),
        ("Can I cancel my contract?", ""),
        ("Roaming charges in Canada?", "canada"),  # a sentence's first word is not taken for a name
    ],
)
def test_the_signature_holds_numbers_named_things_and_reversing_words(text: str, signature: str) -> None:
    assert question_signature(text) == signature


# --- lookups -----------------------------------------------------------------------------------------------


def test_a_question_asked_again_gets_the_stored_answer_in_one_round_trip(tenant: Tenant) -> None:
    payload = {
        "text": "A Travel Pass costs €6 per day in Zone 2.",
        "evidence": [{"chunk": "c1", "sentence": 3}],
        "citations": [{"n": 1, "title": "Roaming and Travel Policy"}],
        "retrieval": {"top_similarity": 0.71},
    }
    _store(tenant, ZONE_2, payload=payload)
    vector = _vector("hi, how much does the travel pass cost in zone 2? thanks")
    with CaptureQueriesContext(connection) as queries:
        hit = cache_lookup(
            tenant=tenant,
            style="quote",
            question="hi, how much does the travel pass cost in zone 2? thanks",
            vector=vector,
        )
    assert hit == CacheHit(payload=payload, kind="exact", similarity=1.0)
    assert len(queries) == 1
    row = CachedAnswer.objects.get()
    assert (row.hits, row.last_hit_at is not None, row.knowledge_epoch, row.signature) == (
        1,
        True,
        1,
        "2|travel pass|zone 2",
    )


def test_a_rephrasing_gets_the_neighbours_answer(tenant: Tenant, settings: Any) -> None:
    stored = "How do I get a PAC code?"
    asked = "How can I get my PAC code?"
    similarity = _similarity(stored, asked)
    assert similarity >= answer_cache.DEFAULT_SIMILARITY
    _store(tenant, stored)
    hit = _lookup(tenant, asked)
    assert hit is not None
    assert (hit.kind, hit.payload) == ("neighbour", _payload(f"answer to {stored}"))
    assert hit.similarity == pytest.approx(similarity, abs=1e-4)
    # A stricter threshold turns the same rephrasing into a miss.
    settings.ANSWER_CACHE_SIMILARITY = similarity + 0.001
    assert _lookup(tenant, asked) is None


def test_zone_2_never_gets_the_zone_3_answer(tenant: Tenant) -> None:
    # The embeddings alone would call them the same question.
    assert _similarity(ZONE_2, ZONE_3) >= 0.95
    _store(tenant, ZONE_3)
    assert _lookup(tenant, ZONE_2) is None
    assert _lookup(tenant, "What is the price of the Travel Pass in Zone 2?") is None
    assert _lookup(tenant, "What is the price of the Travel Pass in Zone 3?") is not None


def test_with_and_without_are_different_questions(tenant: Tenant) -> None:
    stored = "What does data cost in Zone 3 without a Travel Pass?"
    asked = "What does data cost in Zone 3 with a Travel Pass?"
    assert _similarity(stored, asked) >= 0.95
    _store(tenant, stored)
    assert _lookup(tenant, asked) is None


def test_companies_and_styles_never_share_answers(tenant: Tenant, make_tenant: Any) -> None:
    other = make_tenant()
    _store(tenant, ZONE_2, style="quote")
    assert _lookup(other, ZONE_2) is None
    assert _lookup(tenant, ZONE_2, style="compose") is None
    _store(tenant, ZONE_2, style="compose", payload=_payload("composed"))
    assert _lookup(tenant, ZONE_2, style="compose").payload == _payload("composed")  # type: ignore[union-attr]
    assert _lookup(tenant, ZONE_2, style="quote").payload == _payload(f"answer to {ZONE_2}")  # type: ignore[union-attr]
    assert _lookup(other, ZONE_2, style="compose") is None


def test_storing_again_replaces_the_answer(tenant: Tenant) -> None:
    _store(tenant, ZONE_2, payload=_payload("first"))
    _store(tenant, "how much does the travel pass cost in zone 2", payload=_payload("second"))
    assert CachedAnswer.objects.count() == 1
    assert _lookup(tenant, ZONE_2).payload == _payload("second")  # type: ignore[union-attr]


def test_vectors_of_another_embedding_model_are_not_neighbours(tenant: Tenant, settings: Any) -> None:
    _store(tenant, "How do I get a PAC code?")
    settings.EMBEDDINGS_MODEL = "another-model"
    assert _lookup(tenant, "How can I get my PAC code?") is None
    assert _lookup(tenant, "how do i get a pac code") is not None  # the words alone still match


def test_overlong_questions_are_neither_stored_nor_looked_up(tenant: Tenant) -> None:
    question = "Roaming? " * 100
    _store(tenant, question)
    assert CachedAnswer.objects.count() == 0
    assert _lookup(tenant, question) is None


def test_metrics_count_hits_misses_and_stores(tenant: Tenant) -> None:
    _store(tenant, "How do I get a PAC code?")
    _lookup(tenant, "how do I get a PAC code")
    _lookup(tenant, "How can I get my PAC code?")
    _lookup(tenant, "Is roaming free in Canada?")
    _lookup(tenant, "Is roaming free in Japan?")
    exposition = parse(metrics.metrics_render())
    assert [(s[1]["result"], s[2]) for s in exposition.samples if s[0] == FAMILY] == [
        ("hit_exact", 1.0),
        ("hit_neighbour", 1.0),
        ("miss", 2.0),
        ("store", 1.0),
    ]
    assert {s[1]["tenant"] for s in exposition.samples if s[0] == FAMILY} == {tenant.slug}


# --- invalidation ------------------------------------------------------------------------------------------


def _upload(tenant: Tenant, data: bytes, filename: str, document: Document | None = None) -> DocumentVersion:
    version = kb.document_upload(
        tenant=tenant, actor=None, upload=kb.Upload(filename=filename, data=data), document=document
    )
    ready = ingestion.version_ingest(version_id=str(version.id))
    assert ready is not None
    assert ready.status == "ready", ready.error_message
    return ready


def _cached_then(tenant: Tenant, change: Any) -> Tenant:
    """Stores an answer under the tenant's current epoch, makes the change, and returns the tenant as a
    caller would read it next (fresh)."""
    before = _fresh(tenant)
    _store(before, ZONE_2)
    assert _lookup(before, ZONE_2) is not None
    change()
    after = _fresh(tenant)
    assert after.knowledge_epoch == before.knowledge_epoch + 1
    assert _lookup(after, ZONE_2) is None
    return after


def test_every_change_to_published_knowledge_invalidates(tenant: Tenant) -> None:
    first = _upload(tenant, ROAMING_POLICY, "roaming.md")
    _cached_then(tenant, lambda: kb.version_publish(version=first, actor=None))
    second = _upload(
        tenant, ROAMING_POLICY + b"\nTravel Pass prices changed.\n", "roaming.md", first.document
    )
    _cached_then(tenant, lambda: kb.version_publish(version=second, actor=None))
    _cached_then(tenant, lambda: kb.version_rollback(document=first.document, number=1, actor=None))
    _cached_then(tenant, lambda: kb.version_redact(version=first, actor=None))
    _cached_then(tenant, lambda: kb.document_unpublish(document=first.document, actor=None))
    refunds = _upload(tenant, REFUND_POLICY, "refunds.md")
    _cached_then(tenant, lambda: kb.version_publish(version=refunds, actor=None))
    _cached_then(
        tenant, lambda: kb.document_delete(document=Document.objects.get(id=refunds.document_id), actor=None)
    )


def test_changes_to_unpublished_drafts_keep_the_cache(tenant: Tenant) -> None:
    draft = _upload(tenant, ROAMING_POLICY, "roaming.md")
    _store(tenant, ZONE_2)
    kb.version_redact(version=draft, actor=None)
    kb.document_delete(document=Document.objects.get(id=draft.document_id), actor=None)
    fresh = _fresh(tenant)
    assert fresh.knowledge_epoch == 1
    assert _lookup(fresh, ZONE_2) is not None


def test_the_next_store_removes_older_epochs(tenant: Tenant) -> None:
    _store(tenant, ZONE_2)
    _store(tenant, ZONE_3)
    kb.version_publish(version=_upload(tenant, ROAMING_POLICY, "roaming.md"), actor=None)
    assert CachedAnswer.objects.count() == 2  # nothing reads them any more; the next store removes them
    _store(_fresh(tenant), "How do I get a PAC code?")
    assert list(CachedAnswer.objects.values_list("normalized", "knowledge_epoch")) == [
        ("how do i get a pac code", 2)
    ]


def test_a_caller_with_a_stale_tenant_stores_where_nobody_looks(tenant: Tenant) -> None:
    """The evidence was read before a publish: the answer lands under the old epoch and is never served."""
    stale = _fresh(tenant)
    kb.version_publish(version=_upload(tenant, ROAMING_POLICY, "roaming.md"), actor=None)
    _store(stale, ZONE_2)
    assert _lookup(_fresh(tenant), ZONE_2) is None


# --- the cap -----------------------------------------------------------------------------------------------


def test_each_company_keeps_at_most_the_cap_dropping_the_least_recently_used(
    tenant: Tenant, make_tenant: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(answer_cache, "MAX_ROWS_PER_TENANT", 3)
    other = make_tenant()
    _store(other, "How do I get a PAC code?")
    questions = [f"Can I pause my contract for {n} months?" for n in range(1, 5)]
    for question in questions[:3]:
        _store(tenant, question)
    assert _lookup(tenant, questions[0]) is not None  # used again: the most recent now
    _store(tenant, questions[3])
    kept = set(CachedAnswer.objects.filter(tenant=tenant).values_list("normalized", flat=True))
    assert kept == {question_normalize(q) for q in (questions[0], questions[2], questions[3])}
    assert CachedAnswer.objects.filter(tenant=other).count() == 1  # other companies' rows are theirs
