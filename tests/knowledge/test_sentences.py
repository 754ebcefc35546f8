"""Sentence units on the real database and the real embedding model: ingestion, publishing, search,
neighbours, re-embedding and the backfill of versions ingested before units existed."""

from __future__ import annotations

import io
import json
import math

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext

from apps.demo.services import demo_knowledge_load
from apps.guardrails.pii import pii_redact
from apps.knowledge import ingestion, retrieval, selectors, sentences, services
from apps.knowledge.models import Chunk, DocumentVersion, Sentence
from apps.knowledge.retrieval import Pool, SentenceHit, VectorRetriever
from apps.llm.embeddings import embedder
from tests.fakes.openai_server import FakeOpenAI
from tests.knowledge.fixtures import prose
from tests.knowledge.test_ingestion import REFUNDS_V1, REFUNDS_V2, ROAMING, ingest

pytestmark = pytest.mark.django_db

PAYMENTS = f"""# Payments

## Ways to pay

You can pay by:

- card, e.g. Visa or Mastercard;
- cash at store No. 5 (approx. 10 minutes from the station).

A paper bill costs €2.50. It is free for customers aged 75 or over.

| Plan | Price |
| --- | --- |
| Basic | €12.50 |

## Late fees

A late fee of €7.50 applies after 10 days. A second late payment in a year costs 12 euros.

## Terms

{prose(3, 40)}
""".encode()


def vector_of(text: str) -> list[float]:
    [vector] = embedder().embed([str(pii_redact(text))])
    return vector


def candidates(tenant, question: str, **kwargs) -> list[SentenceHit]:
    return retrieval.sentence_candidates(
        tenant=tenant, query=pii_redact(question), vector=vector_of(question), **kwargs
    )


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_ingestion_stores_each_sentence_once_with_its_chunk_section_and_vector(make_tenant):
    tenant = make_tenant()
    version = ingest(tenant, PAYMENTS, filename="payments.md")
    chunks = {c.id: c for c in Chunk.objects.filter(version=version)}
    terms = [c for c in chunks.values() if c.section_path == ["Payments", "Terms"]]
    assert len(terms) >= 3  # the long section is cut into overlapping chunks
    rows = list(Sentence.objects.filter(version=version).order_by("ordinal"))
    assert [r.ordinal for r in rows] == list(range(len(rows)))
    assert [r.text for r in rows[:8]] == [
        "You can pay by:",
        "- card, e.g. Visa or Mastercard;",
        "- cash at store No. 5 (approx. 10 minutes from the station).",
        "A paper bill costs €2.50.",
        "It is free for customers aged 75 or over.",
        "Plan | Price",
        "Basic | €12.50",
        "A late fee of €7.50 applies after 10 days.",
    ]
    term_texts = [r.text for r in rows if r.section_path == ["Payments", "Terms"]]
    assert term_texts == prose(3, 40).replace(". ", ".\n").splitlines()  # every sentence once, in order
    for row in rows:
        holder = chunks[row.chunk_id]
        assert row.text in holder.text
        assert row.section_path == holder.section_path
        assert row.page == holder.page
        assert not any(
            row.text in c.text
            for c in chunks.values()
            if c.ordinal < holder.ordinal and c.section_path == holder.section_path
        )
        assert (row.tenant_id, row.document_id, row.live) == (tenant.id, version.document_id, False)
        assert row.embedding is not None
        assert len(row.embedding) == 384
        assert row.embedding_model == "all-MiniLM-L6-v2"
    assert len({r.section_ordinal for r in rows}) == 3
    assert Sentence.objects.filter(version=version, search_vector__isnull=True).count() == 0
    # The vector is of "title > section: sentence", the passage's context in front of the sentence.
    fee = next(r for r in rows if r.text.startswith("A late fee"))
    expected = vector_of("payments > Payments > Late fees: A late fee of €7.50 applies after 10 days.")
    assert fee.embedding is not None
    assert cosine(list(fee.embedding), expected) == pytest.approx(1.0, abs=1e-5)


def test_sentence_embedding_inputs_name_the_document_and_section_and_are_redacted(make_tenant, settings):
    tenant = make_tenant()
    data = REFUNDS_V1 + b"\n## Contact\n\nWrite to maria.lopez@example.com for help.\n"
    with FakeOpenAI() as fake:
        settings.EMBEDDINGS_BASE_URL = fake.base_url
        version = ingest(tenant, data)
        inputs = [
            text
            for _, path, body in fake.requests
            if path == "/v1/embeddings" and body
            for text in body["input"]
        ]
    assert version.status == "ready"
    assert (
        "refunds > Refund policy > Late payment fees: "
        "A bill paid after its due date costs a late fee of 7 euros." in inputs
    )
    assert "refunds > Refund policy > Contact: Write to <EMAIL_ADDRESS> for help." in inputs
    assert not any("maria.lopez" in text for text in inputs)
    # The stored text stays as written until the editor redacts the version, and then follows the chunk.
    contact = Sentence.objects.get(version=version, section_path__contains=["Contact"])
    assert contact.text == "Write to maria.lopez@example.com for help."
    services.version_redact(version=version, actor=None)
    contact.refresh_from_db()
    assert contact.text == "Write to <EMAIL_ADDRESS> for help."
    assert contact.text in contact.chunk.text
    assert not Sentence.objects.filter(version=version, search_vector__isnull=True).exists()


def live_versions(document) -> set[int]:
    return set(
        Sentence.objects.filter(document=document, live=True).values_list("version__number", flat=True)
    )


def test_publish_rollback_unpublish_and_delete_move_sentences_with_their_chunks(make_tenant):
    tenant = make_tenant()
    v1 = ingest(tenant, REFUNDS_V1)
    document = v1.document
    v2 = ingest(tenant, REFUNDS_V2, document=document)
    assert live_versions(document) == set()
    assert candidates(tenant, "How long can I return a phone?") == []

    services.version_publish(version=v1, actor=None)
    assert live_versions(document) == {1}
    assert (
        Sentence.objects.filter(document=document, live=True).count()
        == Sentence.objects.filter(version=v1).count()
    )
    assert "30 days" in candidates(tenant, "How long can I return a phone?")[0].text

    services.version_publish(version=v2, actor=None)
    assert live_versions(document) == {2}
    hits = candidates(tenant, "How long can I return a phone?")
    assert {h.version_number for h in hits} == {2}
    assert "45 days" in hits[0].text

    services.version_rollback(document=document, number=1, actor=None)
    assert live_versions(document) == {1}

    services.document_unpublish(document=document, actor=None)
    assert live_versions(document) == set()
    assert candidates(tenant, "How long can I return a phone?") == []

    services.version_publish(version=v2, actor=None)
    services.document_delete(document=document, actor=None)
    assert Sentence.objects.for_tenant(tenant).count() == 0


def test_candidates_union_vector_and_full_text_hits_each_with_a_real_similarity(make_tenant):
    tenant = make_tenant()
    services.version_publish(version=ingest(tenant, PAYMENTS, filename="payments.md"), actor=None)
    question = "What does a late payment cost?"
    vector = vector_of(question)
    hits = retrieval.sentence_candidates(tenant=tenant, query=pii_redact(question), vector=vector)
    assert len({h.sentence_id for h in hits}) == len(hits)
    assert [h.similarity for h in hits] == sorted((h.similarity for h in hits), reverse=True)
    assert {h.text for h in hits[:2]} == {
        "A late fee of €7.50 applies after 10 days.",
        "A second late payment in a year costs 12 euros.",
    }
    assert (hits[0].document_title, hits[0].version_number, hits[0].section_path) == (
        "payments",
        1,
        ["Payments", "Late fees"],
    )
    by_id = {h.sentence_id: h for h in hits}
    # Full text alone: every hit matched a word of the question, and still has its cosine similarity.
    text_only = retrieval.sentence_candidates(
        tenant=tenant, query=pii_redact(question), vector=vector, n_vector=0, n_text=5
    )
    assert len(text_only) == 5
    for hit in text_only:
        assert hit.text_rank is not None
        assert hit.text_rank > 0
        row = Sentence.objects.get(pk=hit.sentence_id)
        assert row.embedding is not None
        assert hit.similarity == pytest.approx(cosine(list(row.embedding), vector), abs=1e-5)
        if hit.sentence_id in by_id:
            assert by_id[hit.sentence_id].similarity == pytest.approx(hit.similarity)
    vector_only = retrieval.sentence_candidates(
        tenant=tenant, query=pii_redact(question), vector=vector, n_vector=3, n_text=0
    )
    assert [h.sentence_id for h in vector_only] == [h.sentence_id for h in hits[:3]]
    assert all(h.text_rank is None for h in vector_only)
    # The union: the 3 nearest and the 5 best matches, each once.
    both = retrieval.sentence_candidates(
        tenant=tenant, query=pii_redact(question), vector=vector, n_vector=3, n_text=5
    )
    assert {h.sentence_id for h in both} == {h.sentence_id for h in vector_only} | {
        h.sentence_id for h in text_only
    }


def test_another_tenants_sentences_are_never_returned(make_tenant):
    a, b = make_tenant(), make_tenant()
    services.version_publish(version=ingest(a, REFUNDS_V1), actor=None)
    services.version_publish(version=ingest(b, ROAMING, filename="roaming.md"), actor=None)
    for hit in candidates(b, "refund for a returned phone within 30 days", n_vector=100, n_text=100):
        assert hit.document_title == "roaming"
    hits_a = candidates(a, "roaming charges in EU countries", n_vector=100, n_text=100)
    assert hits_a
    assert {h.document_title for h in hits_a} == {"refunds"}
    # Neither are a sentence's neighbours, asked for with the other tenant.
    ids = [h.sentence_id for h in hits_a]
    assert retrieval.sentence_neighbours(tenant=b, sentence_ids=ids, before=5, after=5) == {
        i: ([], []) for i in ids
    }


def test_neighbours_stay_in_their_section_and_version(make_tenant):
    tenant = make_tenant()
    version = ingest(tenant, PAYMENTS, filename="payments.md")
    rows = {r.text: r for r in Sentence.objects.filter(version=version)}
    lead_in, first_item = rows["You can pay by:"], rows["- card, e.g. Visa or Mastercard;"]
    fee, second_fee = (
        rows["A late fee of €7.50 applies after 10 days."],
        rows["A second late payment in a year costs 12 euros."],
    )
    found = retrieval.sentence_neighbours(
        tenant=tenant, sentence_ids=[lead_in.id, fee.id, second_fee.id], before=2, after=2
    )
    before, after = found[lead_in.id]
    assert before == []
    assert [h.text for h in after] == [
        first_item.text,
        "- cash at store No. 5 (approx. 10 minutes from the station).",
    ]
    assert (after[0].sentence_id, after[0].similarity, after[0].text_rank) == (first_item.id, 0.0, None)
    # The late-fee section has two sentences: nothing from the sections around it.
    assert [[h.text for h in side] for side in found[fee.id]] == [[], [second_fee.text]]
    assert [[h.text for h in side] for side in found[second_fee.id]] == [[fee.text], []]
    before, after = retrieval.sentence_neighbours(tenant=tenant, sentence_ids=[first_item.id])[first_item.id]
    assert ([h.text for h in before], len(after)) == (["You can pay by:"], 1)


def test_kb_reembed_reembeds_stale_sentences_and_backfills_versions_without_any(make_tenant, settings):
    tenant = make_tenant()
    published = ingest(tenant, REFUNDS_V1)
    services.version_publish(version=published, actor=None)
    draft = ingest(tenant, ROAMING, filename="roaming.md")
    expected = {
        v.id: list(
            Sentence.objects.filter(version=v).order_by("ordinal").values_list("text", "chunk_id", "live")
        )
        for v in (published, draft)
    }
    count = Sentence.objects.for_tenant(tenant).count()
    # An install upgraded from before sentence units: ready versions with chunks and none.
    Sentence.objects.for_tenant(tenant).delete()
    with FakeOpenAI() as fake:
        settings.EMBEDDINGS_BASE_URL = fake.base_url
        settings.EMBEDDINGS_MODEL = "other-embedder"
        out = io.StringIO()
        call_command("kb_reembed", stdout=out)
        report = json.loads(out.getvalue())
        assert report["model"] == "other-embedder"
        assert (report["reembedded"], report["sentences_reembedded"], report["versions_backfilled"]) == (
            published.chunk_count + draft.chunk_count,
            count,
            2,
        )
        for version in (published, draft):
            rows = Sentence.objects.filter(version=version).order_by("ordinal")
            assert list(rows.values_list("text", "chunk_id", "live")) == expected[version.id]
        assert set(Sentence.objects.for_tenant(tenant).values_list("embedding_model", flat=True)) == {
            "other-embedder"
        }
        assert not Sentence.objects.for_tenant(tenant).filter(search_vector__isnull=True).exists()
        hits = candidates(tenant, "how many days to return a phone")
        assert hits
        assert {h.document_title for h in hits} == {"refunds"}  # the live version only
        # Nothing left to do.
        assert ingestion.knowledge_reembed() == ingestion.Reembedded(
            versions_backfilled=0, chunks=0, sentences=0
        )

    # Back on the first model: every sentence (and chunk) is stale again and is re-embedded.
    settings.EMBEDDINGS_BASE_URL = None
    settings.EMBEDDINGS_MODEL = "all-MiniLM-L6-v2"
    assert ingestion.chunks_reembed() == published.chunk_count + draft.chunk_count
    assert set(Sentence.objects.for_tenant(tenant).values_list("embedding_model", flat=True)) == {
        "all-MiniLM-L6-v2"
    }


def test_a_model_change_leaves_stale_sentences_out_of_candidates_until_reembedded(make_tenant, settings):
    tenant = make_tenant()
    services.version_publish(version=ingest(tenant, REFUNDS_V1), actor=None)
    with FakeOpenAI() as fake:
        settings.EMBEDDINGS_BASE_URL = fake.base_url
        settings.EMBEDDINGS_MODEL = "other-embedder"
        [vector] = embedder().embed(["phone returns"])
        query = pii_redact("phone returns")
        assert retrieval.sentence_candidates(tenant=tenant, query=query, vector=vector) == []  # never mixed
        ingestion.sentences_reembed()
        hits = retrieval.sentence_candidates(tenant=tenant, query=query, vector=vector)
        assert len(hits) == Sentence.objects.for_tenant(tenant).count()


def test_the_demo_company_gets_its_missing_sentences_when_loaded_again(
    make_tenant, django_assert_num_queries
):
    tenant = make_tenant()
    services.version_publish(version=ingest(tenant, REFUNDS_V1), actor=None)
    count = Sentence.objects.for_tenant(tenant).count()
    # Nothing missing: one query to find out (after the one asking whether the company has documents).
    with django_assert_num_queries(2):
        assert demo_knowledge_load(tenant=tenant) == 0
    Sentence.objects.for_tenant(tenant).delete()
    assert demo_knowledge_load(tenant=tenant) == 0
    assert Sentence.objects.for_tenant(tenant).filter(live=True).count() == count
    assert not Sentence.objects.for_tenant(tenant).filter(embedding__isnull=True).exists()


def test_the_configured_retriever_returns_passages_and_sentences_in_one_round_trip(make_tenant, settings):
    tenant = make_tenant()
    services.version_publish(version=ingest(tenant, PAYMENTS, filename="payments.md"), actor=None)
    question = "What does a late payment cost?"
    query, vector = pii_redact(question), vector_of(question)
    current = retrieval.retriever()
    assert isinstance(current, VectorRetriever)
    assert retrieval.retriever() is current  # made once per process
    current.retrieve(tenant=tenant, query=query, vector=vector, k=3, threshold=None)  # warm
    with CaptureQueriesContext(connection) as queries:
        pool = current.retrieve(tenant=tenant, query=query, vector=vector, k=3, threshold=None)
    assert len(queries) == 1
    assert isinstance(pool, Pool)
    assert pool.retrieval == selectors.knowledge_search(tenant=tenant, query=query, k=3, query_vector=vector)
    assert pool.retrieval.answerable is True
    assert pool.sentences == retrieval.sentence_candidates(tenant=tenant, query=query, vector=vector)
    strict = current.retrieve(tenant=tenant, query=query, vector=vector, k=3, threshold=0.99)
    assert (strict.retrieval.threshold, strict.retrieval.answerable) == (0.99, False)

    settings.ASSISTANT_RETRIEVER = "tests.knowledge.test_sentences.EmptyRetriever"
    assert isinstance(retrieval.retriever(), EmptyRetriever)


class EmptyRetriever:
    def retrieve(self, *, tenant, query, vector, k, threshold) -> Pool:  # pragma: no cover - never called
        raise AssertionError


def test_a_database_fault_is_retrieval_unavailable(make_tenant, monkeypatch):
    tenant = make_tenant()
    services.version_publish(version=ingest(tenant, REFUNDS_V1), actor=None)
    vector = vector_of("refund")

    def broken(sql, params):
        raise DatabaseError("index unreadable")

    monkeypatch.setattr(retrieval, "_result_sets", broken)
    with pytest.raises(selectors.RetrievalUnavailable):
        retrieval.sentence_candidates(tenant=tenant, query=pii_redact("refund"), vector=vector)
    with pytest.raises(selectors.RetrievalUnavailable):
        retrieval.sentence_neighbours(
            tenant=tenant, sentence_ids=list(Sentence.objects.values_list("id", flat=True))
        )
    with pytest.raises(selectors.RetrievalUnavailable):
        retrieval.retriever().retrieve(
            tenant=tenant, query=pii_redact("refund"), vector=vector, k=3, threshold=None
        )


def test_the_version_page_selector_lists_sentences_in_order(make_tenant):
    tenant = make_tenant()
    version = ingest(tenant, REFUNDS_V1)
    texts = [s.text for s in selectors.version_sentences(version=DocumentVersion.objects.get(pk=version.pk))]
    assert texts[0].startswith("You can return a phone within 30 days of delivery for a full refund")
    assert len(texts) == 3


def test_units_are_made_again_without_vectors_when_redaction_moves_a_sentence_boundary(make_tenant):
    tenant = make_tenant()
    version = ingest(tenant, REFUNDS_V1)
    before = Sentence.objects.filter(version=version).count()
    # As if redaction had turned one sentence into two: the units no longer line up with the stored ones.
    fees = Chunk.objects.get(version=version, section_path__contains=["Late payment fees"])
    fees.text = fees.text.replace("costs a late fee of 7 euros.", "costs a late fee. It is 7 euros.")
    fees.save(update_fields=["text"])
    assert sentences.version_sentences_redact(version=version) is True
    rows = list(Sentence.objects.filter(version=version).order_by("ordinal"))
    assert len(rows) == before + 1
    assert [r.ordinal for r in rows] == list(range(before + 1))
    assert "It is 7 euros." in [r.text for r in rows]
    assert {(r.embedding_model, r.embedding) for r in rows} == {("", None)}  # left for re-embedding
    assert ingestion.sentences_reembed() == before + 1
