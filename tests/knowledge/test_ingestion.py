"""Ingestion, versions and retrieval on the real database, the real embedding model and the real parser.

The Celery task is a one-line interface (STYLE rule 9); these tests call the service it calls, in the test
process, so each step can be asserted. tests/knowledge/test_worker.py runs the same path through a worker.
"""

from __future__ import annotations

import pytest

from apps.core.errors import BadRequest, Conflict
from apps.guardrails.pii import pii_redact
from apps.knowledge import ingestion, selectors, services
from apps.knowledge.models import Chunk, Document, DocumentEvent, DocumentVersion, VersionStatus
from tests.fakes.openai_server import FakeOpenAI

pytestmark = pytest.mark.django_db

REFUNDS_V1 = b"""# Refund policy

## Device returns

You can return a phone within 30 days of delivery for a full refund, if it is undamaged and in its box.

## Late payment fees

A bill paid after its due date costs a late fee of 7 euros. A second late payment in a year costs 12 euros.
"""

REFUNDS_V2 = REFUNDS_V1.replace(b"within 30 days", b"within 45 days")

ROAMING = b"""# Roaming

## Travelling in the EU

Calls, texts and data in EU countries are charged as at home, up to your plan's fair-use allowance.
"""


def upload(tenant, data: bytes, filename: str = "refunds.md", document: Document | None = None):
    return services.document_upload(
        tenant=tenant, actor=None, upload=services.Upload(filename=filename, data=data), document=document
    )


def ingest(
    tenant, data: bytes, filename: str = "refunds.md", document: Document | None = None
) -> DocumentVersion:
    version = upload(tenant, data, filename, document)
    result = ingestion.version_ingest(version_id=str(version.id))
    assert result is not None
    return result


def search(tenant, query: str, **kwargs):
    return selectors.knowledge_search(tenant=tenant, query=pii_redact(query), **kwargs)


def test_markdown_ingests_into_sectioned_passages_that_are_not_live_until_published(make_tenant):
    tenant = make_tenant()
    version = ingest(tenant, REFUNDS_V1)
    assert (version.status, version.progress, version.number, version.kind) == ("ready", 100, 1, "markdown")
    chunks = list(Chunk.objects.filter(version=version).order_by("ordinal"))
    assert version.chunk_count == len(chunks) == 2
    assert [c.section_path for c in chunks] == [
        ["Refund policy", "Device returns"],
        ["Refund policy", "Late payment fees"],
    ]
    assert chunks[0].text.startswith("You can return a phone within 30 days")
    assert all(c.embedding is not None and len(c.embedding) == 384 for c in chunks)
    assert {c.embedding_model for c in chunks} == {"all-MiniLM-L6-v2"}
    assert all(not c.live for c in chunks)
    assert Chunk.objects.filter(version=version, search_vector__isnull=True).count() == 0
    assert set(version.timings) >= {"parse_s", "embed_s", "total_s", "chunks_per_s"}
    # A draft is invisible to retrieval.
    assert search(tenant, "Can I return my phone?").passages == []


def test_publish_makes_passages_retrievable_with_their_citation(make_tenant):
    tenant = make_tenant()
    version = ingest(tenant, REFUNDS_V1)
    services.version_publish(version=version, actor=None)
    result = search(tenant, "how many days do I have to send back a phone for a refund?")
    top = result.passages[0]
    assert (top.document_title, top.version_number, top.section_path) == (
        "refunds",
        1,
        ["Refund policy", "Device returns"],
    )
    assert "30 days" in top.text
    assert top.similarity is not None
    assert top.similarity > result.threshold
    assert result.answerable is True
    assert result.model == "all-MiniLM-L6-v2"


def test_versions_switch_atomically_and_roll_back(make_tenant):
    tenant = make_tenant()
    v1 = ingest(tenant, REFUNDS_V1)
    services.version_publish(version=v1, actor=None)
    v2 = ingest(tenant, REFUNDS_V2, document=v1.document)
    assert v2.number == 2
    question = "how long can I return a phone?"
    assert "30 days" in search(tenant, question).passages[0].text  # v2 is still a draft

    services.version_publish(version=v2, actor=None)
    passages = search(tenant, question, k=10).passages
    assert {p.version_number for p in passages} == {2}
    assert "45 days" in passages[0].text
    assert Chunk.objects.filter(document=v1.document, live=True).count() == v2.chunk_count

    rolled = services.version_rollback(document=v1.document, number=1, actor=None)
    assert rolled.id == v1.id
    passages = search(tenant, question, k=10).passages
    assert {p.version_number for p in passages} == {1}
    document = Document.objects.get(pk=v1.document_id)
    assert document.published_version_id == v1.id
    assert list(
        DocumentEvent.objects.filter(document=document)
        .order_by("created_at")
        .values_list("action", "version__number")
    ) == [("upload", 1), ("publish", 1), ("upload", 2), ("publish", 2), ("rollback", 1)]
    assert DocumentVersion.objects.filter(document=document).count() == 2  # every version is kept


def test_only_ready_versions_publish_and_not_twice(make_tenant):
    tenant = make_tenant()
    queued = upload(tenant, REFUNDS_V1)
    with pytest.raises(Conflict, match="only a ready version can be published"):
        services.version_publish(version=queued, actor=None)
    ready = ingestion.version_ingest(version_id=str(queued.id))
    assert ready is not None
    services.version_publish(version=ready, actor=None)
    with pytest.raises(Conflict, match="already published"):
        services.version_publish(version=ready, actor=None)


def test_retrieval_is_tenant_scoped(make_tenant):
    a, b = make_tenant(), make_tenant()
    services.version_publish(version=ingest(a, REFUNDS_V1), actor=None)
    services.version_publish(version=ingest(b, ROAMING, filename="roaming.md"), actor=None)
    for passage in search(b, "refund for a returned phone within 30 days", k=20).passages:
        assert passage.document_title == "roaming"
    for passage in search(a, "roaming charges in EU countries", k=20).passages:
        assert passage.document_title == "refunds"


def test_a_task_delivered_twice_ingests_once(make_tenant):
    tenant = make_tenant()
    version = upload(tenant, REFUNDS_V1)
    assert ingestion.version_ingest(version_id=str(version.id)) is not None
    assert ingestion.version_ingest(version_id=str(version.id)) is None
    assert Chunk.objects.filter(version=version).count() == 2


def test_corrupt_pdf_fails_with_a_reason_and_indexes_nothing(make_tenant):
    tenant = make_tenant()
    version = ingest(tenant, b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\n% truncated", filename="terms.pdf")
    assert version.status == VersionStatus.FAILED
    assert version.error_code == "corrupt"
    assert version.error_message
    assert Chunk.objects.filter(version=version).count() == 0


@pytest.mark.parametrize(
    ("filename", "data", "message"),
    [
        ("policy.pdf", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "policy.pdf: "),
        ("huge.md", b"a" * (20 * 1024 * 1024 + 1), "huge.md is 20.0 MB; the limit is 20 MB."),
    ],
)
def test_bad_uploads_are_refused_before_anything_is_stored(make_tenant, filename, data, message):
    tenant = make_tenant()
    with pytest.raises(BadRequest) as caught:
        upload(tenant, data, filename)
    assert caught.value.message.startswith(message)
    assert Document.objects.for_tenant(tenant).count() == 0
    assert DocumentVersion.objects.for_tenant(tenant).count() == 0


def test_embedding_outage_fails_the_version_cleanly_and_retry_recovers(make_tenant, settings):
    tenant = make_tenant()
    version = upload(tenant, REFUNDS_V1)
    with FakeOpenAI() as fake:
        fake.behaviour = "error_500"
        settings.EMBEDDINGS_BASE_URL = fake.base_url
        failed = ingestion.version_ingest(version_id=str(version.id))
    assert failed is not None
    assert (failed.status, failed.error_code) == ("failed", "embeddings_unavailable")
    assert Chunk.objects.filter(version=version).count() == 0
    settings.EMBEDDINGS_BASE_URL = None
    services.version_retry(version=version, actor=None)
    retried = ingestion.version_ingest(version_id=str(version.id))
    assert retried is not None
    assert retried.status == "ready"
    with pytest.raises(Conflict):
        services.version_retry(version=version, actor=None)


def test_no_ungrounded_answer_when_embeddings_are_down(make_tenant, settings):
    tenant = make_tenant()
    services.version_publish(version=ingest(tenant, REFUNDS_V1), actor=None)
    with FakeOpenAI() as fake:
        fake.behaviour = "error_500"
        settings.EMBEDDINGS_BASE_URL = fake.base_url
        with pytest.raises(selectors.RetrievalUnavailable):
            search(tenant, "refund")


def test_unrelated_question_is_flagged_for_abstention(make_tenant):
    tenant = make_tenant()
    services.version_publish(version=ingest(tenant, REFUNDS_V1), actor=None)
    result = search(tenant, "What is the capital of Mongolia?")
    assert result.answerable is False
    assert result.top_similarity is not None
    assert result.top_similarity < result.threshold


def test_delete_removes_every_version_passage_and_vector(make_tenant):
    tenant = make_tenant()
    v1 = ingest(tenant, REFUNDS_V1)
    services.version_publish(version=v1, actor=None)
    ingest(tenant, REFUNDS_V2, document=v1.document)
    services.document_delete(document=v1.document, actor=None)
    assert Chunk.objects.for_tenant(tenant).count() == 0
    assert DocumentVersion.objects.for_tenant(tenant).count() == 0
    assert search(tenant, "return a phone").passages == []
    event = DocumentEvent.objects.for_tenant(tenant).get(action="delete")
    assert event.detail == {"title": "refunds"}


def test_pii_found_in_a_document_is_reported_and_can_be_redacted_before_publishing(make_tenant):
    tenant = make_tenant()
    data = REFUNDS_V1 + b"\n## Contact\n\nWrite to maria.lopez@example.com or call +44 20 7946 0958.\n"
    version = ingest(tenant, data)
    found = {f["entity_type"]: f["count"] for f in version.pii_findings}
    assert found.get("EMAIL_ADDRESS") == 1
    assert found.get("PHONE_NUMBER") == 1
    contact = Chunk.objects.get(version=version, section_path__contains=["Contact"])
    assert "maria.lopez@example.com" in contact.text  # kept until the editor decides
    services.version_redact(version=version, actor=None)
    contact.refresh_from_db()
    assert "maria.lopez@example.com" not in contact.text
    assert "<EMAIL_ADDRESS>" in contact.text
    assert DocumentVersion.objects.get(pk=version.pk).pii_redacted is True


def test_a_new_embedding_model_never_mixes_with_old_vectors_and_reembeds_everything(make_tenant, settings):
    tenant = make_tenant()
    services.version_publish(version=ingest(tenant, REFUNDS_V1), actor=None)
    with FakeOpenAI() as fake:
        settings.EMBEDDINGS_BASE_URL = fake.base_url
        settings.EMBEDDINGS_MODEL = "other-embedder"
        before = search(tenant, "refund days for a phone return")
        # No passage has a vector of the new model yet: nothing is compared across models.
        assert all(p.similarity is None for p in before.passages)
        assert before.passages  # full-text search still finds them
        assert ingestion.chunks_reembed() == 2
        assert set(Chunk.objects.for_tenant(tenant).values_list("embedding_model", flat=True)) == {
            "other-embedder"
        }
        after = search(tenant, "refund days for a phone return")
        assert all(p.similarity is not None for p in after.passages)
        assert ingestion.chunks_reembed() == 0
        embedded_inputs = [
            body["input"] for _, path, body in fake.requests if path == "/v1/embeddings" and body
        ]
    assert any("Refund policy > Device returns" in text for batch in embedded_inputs for text in batch)
