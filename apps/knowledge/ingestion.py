"""The ingestion pipeline a Celery task runs for one uploaded version:

    claim → parse (bounded child process) → chunk along the structure → sentence units → PII scan → embed
    → index

Nothing is visible until the last step, which writes every chunk and sentence unit and marks the version
ready in one transaction: a failure at any point leaves nothing behind, only a `failed` version with the
reason.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from apps.accounts.models import Tenant
from apps.core.realtime import StaffStream, staff_publish
from apps.guardrails.pii import PIIUnavailable, RedactedText, pii_redact, pii_redact_with_findings
from apps.knowledge.models import Chunk, DocumentVersion, Sentence, VersionStatus
from apps.knowledge.parsing import Block, IngestionError, chunk, extract_bounded
from apps.knowledge.parsing.sentences import sentence_drafts
from apps.knowledge.sentences import (
    refresh_sentence_search_vectors,
    sentence_embedding_input,
    sentence_rows,
    version_sentences_create,
    versions_without_sentences,
)
from apps.knowledge.services import LIMITS, publish_version_event, version_event
from apps.llm.embeddings import embedder

logger = logging.getLogger(__name__)

EMBED_BATCH = 64
# A version stuck mid-ingestion this long was abandoned by a killed worker and may be claimed again.
STALE_AFTER = timedelta(minutes=20)
PREVIEW_CHARS = 200_000


def embedding_input(
    title: str, section_path: list[str] | tuple[str, ...], text: RedactedText
) -> RedactedText:
    """What is embedded for a passage: its document and section give the vector its context."""
    heading = " > ".join([title, *section_path]) if title else " > ".join(section_path)
    return RedactedText.trusted(f"{heading}\n{text}" if heading else str(text))


def refresh_search_vectors(version: DocumentVersion) -> None:
    """Full-text vectors (chunks' and sentence units') weight the section headings above the body text."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE knowledge_chunk SET search_vector ="
            " setweight(to_tsvector('english', array_to_string(section_path, ' ')), 'A')"
            " || setweight(to_tsvector('english', text), 'B') WHERE version_id = %s",
            [version.id],
        )
    refresh_sentence_search_vectors(version)


def _claim(version_id: str) -> DocumentVersion | None:
    stale = timezone.now() - STALE_AFTER
    claimable = DocumentVersion.objects.filter(pk=version_id).filter(
        Q(status=VersionStatus.QUEUED)
        | Q(status__in=[VersionStatus.PARSING, VersionStatus.EMBEDDING], updated_at__lt=stale)
    )
    if not claimable.update(status=VersionStatus.PARSING, progress=5, updated_at=timezone.now()):
        return None  # done, failed, deleted, or being ingested by another delivery of the same task
    version = DocumentVersion.objects.select_related("document").get(pk=version_id)
    _push(version)
    return version


def _push(version: DocumentVersion) -> None:
    staff_publish(version.tenant_id, version_event(version), stream=StaffStream.KNOWLEDGE)


def _progress(version: DocumentVersion, *, status: str, progress: int) -> None:
    version.status, version.progress = status, progress
    DocumentVersion.objects.filter(pk=version.pk).update(
        status=status, progress=progress, updated_at=timezone.now()
    )
    _push(version)


def _fail(version: DocumentVersion, code: str, message: str) -> DocumentVersion:
    logger.info("ingestion of version %s failed: %s", version.id, code)
    version.status, version.error_code, version.error_message = VersionStatus.FAILED, code, message
    DocumentVersion.objects.filter(pk=version.pk).update(
        status=VersionStatus.FAILED, error_code=code, error_message=message, updated_at=timezone.now()
    )
    _push(version)
    return version


def _preview(blocks: list[Block] | tuple[Block, ...]) -> str:
    """The extracted text as editors read it: each new section announced by its heading path."""
    lines: list[str] = []
    section: tuple[str, ...] | None = None
    for block in blocks:
        if block.section_path != section and block.section_path:
            lines.append("## " + " > ".join(block.section_path))
        section = block.section_path
        lines.append(block.text)
    return "\n\n".join(lines)


def version_ingest(*, version_id: str) -> DocumentVersion | None:
    version = _claim(version_id)
    if version is None:
        return None
    started = time.perf_counter()
    try:
        extracted = extract_bounded(bytes(version.content), version.filename, LIMITS)
    except IngestionError as exc:
        return _fail(version, exc.code, exc.message)
    drafts = chunk(extracted)
    units = sentence_drafts(drafts)
    parsed_at = time.perf_counter()
    _progress(version, status=VersionStatus.EMBEDDING, progress=30)

    title = version.document.title
    try:
        redacted: list[RedactedText] = []
        found: Counter[str] = Counter()
        for draft in drafts:
            redacted_text, findings = pii_redact_with_findings(draft.text)
            redacted.append(embedding_input(title, draft.section_path, redacted_text))
            found.update(f.entity_type for f in findings)
        # Scanned on their own rather than cut from the redacted chunk: only the scanner makes redacted text.
        redacted.extend(
            sentence_embedding_input(title, unit.section_path, pii_redact(unit.text)) for unit in units
        )
    except PIIUnavailable:
        return _fail(version, "pii_unavailable", "The PII scanner is unavailable. Retry in a minute.")

    vectors: list[list[float]] = []
    model = settings.EMBEDDINGS_MODEL
    try:
        for start in range(0, len(redacted), EMBED_BATCH):
            vectors.extend(embedder().embed(list(redacted[start : start + EMBED_BATCH])))
            done = min(len(redacted), start + EMBED_BATCH)
            _progress(version, status=VersionStatus.EMBEDDING, progress=30 + int(65 * done / len(redacted)))
    except Exception as exc:  # any failure of the embedding service: the version fails, nothing is indexed
        logger.warning("embedding failed for version %s: %s", version.id, exc.__class__.__name__)
        return _fail(
            version,
            "embeddings_unavailable",
            "The embedding service did not answer, so nothing was indexed. Retry when it is back.",
        )
    embedded_at = time.perf_counter()

    with transaction.atomic():
        locked = DocumentVersion.objects.select_for_update().filter(pk=version.pk).first()
        if locked is None or locked.status != VersionStatus.EMBEDDING:
            return None  # deleted meanwhile, or reclaimed as stale by another worker
        Chunk.objects.filter(version=locked).delete()  # and their sentence units (cascade)
        chunks = Chunk.objects.bulk_create(
            [
                Chunk(
                    tenant_id=locked.tenant_id,
                    document_id=locked.document_id,
                    version=locked,
                    ordinal=draft.ordinal,
                    text=draft.text,
                    section_path=list(draft.section_path),
                    page=draft.page,
                    token_estimate=draft.token_estimate,
                    embedding=vector,
                    embedding_model=model,
                )
                for draft, vector in zip(drafts, vectors[: len(drafts)], strict=True)
            ],
            batch_size=500,
        )
        Sentence.objects.bulk_create(
            sentence_rows(
                version=locked,
                chunks=chunks,
                drafts=units,
                live=False,
                vectors=vectors[len(drafts) :],
                model=model,
            ),
            batch_size=500,
        )
        refresh_search_vectors(locked)
        preview = _preview(extracted.blocks)
        locked.status, locked.progress = VersionStatus.READY, 100
        locked.chunk_count = len(drafts)
        locked.page_count = extracted.page_count
        locked.extracted_title = extracted.title[:300]
        locked.extracted_text = preview[:PREVIEW_CHARS]
        locked.warnings = list(extracted.warnings)
        locked.pii_findings = [{"entity_type": t, "count": n} for t, n in sorted(found.items())]
        locked.embedding_model = model
        finished = time.perf_counter()
        locked.timings = {
            "parse_s": round(parsed_at - started, 3),
            "embed_s": round(embedded_at - parsed_at, 3),
            "total_s": round(finished - started, 3),
            "pages_per_s": round((extracted.page_count or 0) / max(parsed_at - started, 1e-6), 2),
            "chunks_per_s": round(len(drafts) / max(embedded_at - parsed_at, 1e-6), 2),
        }
        locked.save()
        publish_version_event(locked)
    return locked


@dataclass(frozen=True)
class Reembedded:
    versions_backfilled: int  # ready versions that had no sentence units and now have them
    chunks: int
    sentences: int


def chunks_reembed(*, batch: int = 128) -> int:
    """`knowledge_reembed`, returning how many passages (chunks) were re-embedded."""
    return knowledge_reembed(batch=batch).chunks


def knowledge_reembed(*, batch: int = 128) -> Reembedded:
    """Brings every vector up to the configured model: creates the sentence units of versions ingested
    before units existed, then re-embeds passages and sentence units whose vectors came from another model
    (or that have none yet), live ones first.

    Retrieval compares only vectors of the configured model, so passages not yet re-embedded are found by
    full-text search alone until their turn comes: two models' vectors are never compared.
    """
    backfilled = sum(1 for v in versions_without_sentences() if version_sentences_create(version_id=v))
    chunks = _chunks_reembed(batch=batch)
    sentences = sentences_reembed(batch=batch)
    return Reembedded(versions_backfilled=backfilled, chunks=chunks, sentences=sentences)


def sentences_backfill(*, tenant: Tenant) -> int:
    """Sentence units, embedded, for the tenant's ready versions that have none (installs upgraded from
    before units existed). Returns how many versions got them; costs one query when none is missing."""
    missing = versions_without_sentences(tenant=tenant)
    backfilled = sum(1 for v in missing if version_sentences_create(version_id=v))
    if missing:
        sentences_reembed(tenant=tenant)
    return backfilled


def _chunks_reembed(*, batch: int) -> int:
    model = settings.EMBEDDINGS_MODEL
    total = 0
    while True:
        stale = list(
            Chunk.objects.exclude(embedding_model=model)
            .filter(version__status=VersionStatus.READY)
            .select_related("document")
            .order_by("-live", "id")[:batch]
        )
        if not stale:
            return total
        texts = [embedding_input(c.document.title, c.section_path, pii_redact(c.text)) for c in stale]
        vectors = embedder().embed(list(texts))
        for chunk_row, vector in zip(stale, vectors, strict=True):
            chunk_row.embedding, chunk_row.embedding_model = vector, model
        Chunk.objects.bulk_update(stale, ["embedding", "embedding_model"])
        DocumentVersion.objects.filter(pk__in={c.version_id for c in stale}).update(embedding_model=model)
        total += len(stale)


def sentences_reembed(*, batch: int = 128, tenant: Tenant | None = None) -> int:
    """Embeds sentence units whose vector is missing or of another model; returns how many."""
    model = settings.EMBEDDINGS_MODEL
    total = 0
    while True:
        rows = Sentence.objects.exclude(embedding_model=model).filter(version__status=VersionStatus.READY)
        if tenant is not None:
            rows = rows.filter(tenant=tenant)
        stale = list(rows.select_related("document").defer("search_vector").order_by("-live", "id")[:batch])
        if not stale:
            return total
        texts = [
            sentence_embedding_input(s.document.title, s.section_path, pii_redact(s.text)) for s in stale
        ]
        vectors = embedder().embed(list(texts))
        for row, vector in zip(stale, vectors, strict=True):
            row.embedding, row.embedding_model = vector, model
        Sentence.objects.bulk_update(stale, ["embedding", "embedding_model"])
        total += len(stale)
