"""Writes of sentence units (models.Sentence): built from a version's chunks at ingestion, for versions
ingested before sentence units existed (backfill), and again when the editor redacts a version.

Splitting is pure and lives in parsing/sentences.py; embedding happens in ingestion.py, which owns the
embedding step. Nothing here talks to the network.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from django.db import connection, transaction
from django.db.models import Exists, OuterRef

from apps.accounts.models import Tenant
from apps.guardrails.pii import RedactedText
from apps.knowledge.models import Chunk, Document, DocumentVersion, Sentence, VersionStatus
from apps.knowledge.parsing.sentences import SentenceDraft, sentence_drafts

logger = logging.getLogger(__name__)


def sentence_embedding_input(title: str, section_path: Sequence[str], text: RedactedText) -> RedactedText:
    """What is embedded for a sentence: "{title} > {section} > ...: {sentence}", so a short sentence keeps
    the context that says what it is about."""
    heading = " > ".join(part for part in [title, *section_path] if part)
    return RedactedText.trusted(f"{heading}: {text}" if heading else str(text))


def sentence_rows(
    *,
    version: DocumentVersion,
    chunks: Sequence[Chunk],
    drafts: Sequence[SentenceDraft],
    live: bool,
    vectors: Sequence[list[float]] | None = None,
    model: str = "",
) -> list[Sentence]:
    """Unsaved rows for `drafts` of `chunks` (the version's chunks, saved). Without vectors the rows are
    left for re-embedding (`embedding_model` empty)."""
    by_ordinal = {chunk.ordinal: chunk for chunk in chunks}
    paired = zip(drafts, vectors, strict=True) if vectors is not None else ((d, None) for d in drafts)
    rows: list[Sentence] = []
    for draft, vector in paired:
        rows.append(
            Sentence(
                tenant_id=version.tenant_id,
                document_id=version.document_id,
                version=version,
                chunk=by_ordinal[draft.chunk_ordinal],
                ordinal=draft.ordinal,
                section_ordinal=draft.section_ordinal,
                text=draft.text,
                section_path=list(draft.section_path),
                page=draft.page,
                live=live,
                embedding=vector,
                embedding_model=model if vector is not None else "",
            )
        )
    return rows


def refresh_sentence_search_vectors(version: DocumentVersion) -> None:
    """Document title and section path weigh above the sentence itself, as headings do for chunks."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE knowledge_sentence s SET search_vector ="
            " setweight(to_tsvector('english', d.title || ' ' || array_to_string(s.section_path, ' ')), 'A')"
            " || setweight(to_tsvector('english', s.text), 'B')"
            " FROM knowledge_document d WHERE d.id = s.document_id AND s.version_id = %s",
            [version.id],
        )


def versions_without_sentences(*, tenant: Tenant | None = None) -> list[uuid.UUID]:
    """Ready versions with chunks but no sentence units: ingested before units existed. Two index probes
    per ready version, so asking costs little when nothing is missing."""
    versions = (
        DocumentVersion.objects.filter(status=VersionStatus.READY)
        .filter(Exists(Chunk.objects.filter(version=OuterRef("pk"))))
        .exclude(Exists(Sentence.objects.filter(version=OuterRef("pk"))))
    )
    if tenant is not None:
        versions = versions.filter(tenant=tenant)
    return list(versions.values_list("pk", flat=True))


def version_sentences_create(*, version_id: uuid.UUID) -> int:
    """Creates the sentence units of a ready version that has none, without vectors (the caller embeds
    them as stale rows). Returns how many; 0 if another process got there first.

    The document row is locked as publishing locks it, so `live` cannot change between reading the
    published version and writing the rows.
    """
    with transaction.atomic():
        version = DocumentVersion.objects.defer("content", "extracted_text").filter(pk=version_id).first()
        if version is None:
            return 0
        document = Document.objects.select_for_update().get(pk=version.document_id)
        version = (
            DocumentVersion.objects.select_for_update().defer("content", "extracted_text").get(pk=version_id)
        )
        if version.status != VersionStatus.READY or Sentence.objects.filter(version=version).exists():
            return 0
        chunks = list(Chunk.objects.filter(version=version).defer("embedding", "search_vector"))
        drafts = sentence_drafts(chunks)
        live = document.published_version_id == version.id
        Sentence.objects.bulk_create(
            sentence_rows(version=version, chunks=chunks, drafts=drafts, live=live), batch_size=500
        )
        refresh_sentence_search_vectors(version)
    return len(drafts)


def version_sentences_redact(*, version: DocumentVersion) -> bool:
    """After the version's chunks were redacted (in the caller's transaction): the units take the
    redacted text. Where redaction moved a sentence boundary, the version's units are made again without
    vectors; returns True when they need embedding."""
    chunks = list(Chunk.objects.filter(version=version).defer("embedding", "search_vector"))
    drafts = sentence_drafts(chunks)
    existing = list(Sentence.objects.filter(version=version).defer("embedding").order_by("ordinal"))
    if not existing:
        return False
    chunk_ids = {chunk.ordinal: chunk.id for chunk in chunks}
    same_units = len(existing) == len(drafts) and all(
        row.ordinal == draft.ordinal and row.chunk_id == chunk_ids[draft.chunk_ordinal]
        for row, draft in zip(existing, drafts, strict=True)
    )
    if same_units:
        for row, draft in zip(existing, drafts, strict=True):
            row.text = draft.text
        Sentence.objects.bulk_update(existing, ["text"], batch_size=500)
        return False
    live = existing[0].live
    Sentence.objects.filter(version=version).delete()
    Sentence.objects.bulk_create(
        sentence_rows(version=version, chunks=chunks, drafts=drafts, live=live), batch_size=500
    )
    logger.info("sentence units of version %s changed with redaction: re-embedding them", version.id)
    return True
