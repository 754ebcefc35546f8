"""Writes on the knowledge base: upload, publish, rollback, redact, delete (STYLE rules 1, 2, 5).

Ingestion itself (parse → scan → chunk → embed → index) lives in `ingestion.py` and runs in Celery.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from apps.accounts.models import Tenant, User
from apps.accounts.services import tenant_knowledge_epoch_bump
from apps.core import event_types
from apps.core.errors import BadRequest, Conflict
from apps.core.realtime import StaffStream, staff_publish
from apps.guardrails.pii import RedactedText
from apps.knowledge.models import (
    Chunk,
    Document,
    DocumentEvent,
    DocumentVersion,
    KnowledgeGap,
    Sentence,
    VersionStatus,
)
from apps.knowledge.parsing import IngestionError, Limits, sniff
from apps.knowledge.sentences import version_sentences_redact

LIMITS = Limits()


def version_event(version: DocumentVersion) -> dict[str, Any]:
    """What the editor pages show of a version, pushed on every change of state or progress."""
    return event_types.KbVersion.model_validate(
        {
            "document_id": str(version.document_id),
            "version_id": str(version.id),
            "number": version.number,
            "status": version.status,
            "progress": version.progress,
            "error_code": version.error_code,
            "error_message": version.error_message,
            "chunk_count": version.chunk_count,
        }
    ).payload()


def publish_version_event(version: DocumentVersion) -> None:
    payload = version_event(version)
    tenant_id = version.tenant_id
    transaction.on_commit(lambda: staff_publish(tenant_id, payload, stream=StaffStream.KNOWLEDGE))


def _enqueue_ingestion(version: DocumentVersion) -> None:
    from apps.knowledge.tasks import version_ingest as version_ingest_task

    version_id = str(version.id)
    # robust: a broker outage must not fail the upload that is already stored; the version stays queued and
    # the editor can queue it again (version_retry).
    transaction.on_commit(lambda: version_ingest_task.delay(version_id), robust=True)


def _enqueue_reembed() -> None:
    from apps.knowledge.tasks import chunks_reembed as chunks_reembed_task

    transaction.on_commit(lambda: chunks_reembed_task.delay(), robust=True)


def upload_size_check(*, filename: str, size: int) -> None:
    if size > LIMITS.max_bytes:
        raise BadRequest(
            f"{filename} is {size / 2**20:.1f} MB; the limit is {LIMITS.max_bytes // 2**20} MB. "
            "Split it or compress its images."
        )


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes


def document_upload(
    *,
    tenant: Tenant,
    actor: User | None,
    upload: Upload,
    document: Document | None = None,
    title: str | None = None,
    effective_date: datetime.date | None = None,
) -> DocumentVersion:
    """Stores the file as a new draft version (1 for a new document, N+1 otherwise) and queues ingestion.

    Size and type are checked here, before anything is stored, so the editor hears at once; everything
    that needs parsing fails later, visibly, on the version.
    """
    filename = PurePath(upload.filename.replace("\\", "/")).name[:255] or "upload"
    upload_size_check(filename=filename, size=len(upload.data))
    try:
        kind = sniff(upload.data, filename)
    except IngestionError as exc:
        raise BadRequest(f"{filename}: {exc.message}") from exc
    if document is not None and document.tenant_id != tenant.id:
        raise BadRequest("That document belongs to another company.")  # callers resolve it tenant-scoped
    with transaction.atomic():
        if document is None:
            document = Document.objects.create(
                tenant=tenant, title=(title or PurePath(filename).stem)[:300], created_by=actor
            )
        else:
            # Serialises concurrent uploads of the same document so version numbers never collide.
            Document.objects.select_for_update().filter(pk=document.pk).get()
        latest = DocumentVersion.objects.filter(document=document).aggregate(n=Max("number"))["n"] or 0
        version = DocumentVersion.objects.create(
            tenant=tenant,
            document=document,
            number=latest + 1,
            filename=filename,
            kind=kind,
            size_bytes=len(upload.data),
            sha256=hashlib.sha256(upload.data).hexdigest(),
            content=upload.data,
            effective_date=effective_date,
            created_by=actor,
        )
        DocumentEvent.objects.create(
            tenant=tenant, document=document, version=version, actor=actor, action=DocumentEvent.Action.UPLOAD
        )
        publish_version_event(version)
        _enqueue_ingestion(version)
    return version


def version_retry(*, version: DocumentVersion, actor: User | None) -> DocumentVersion:
    """Queues a failed version again (after a transient fault such as the embedding server being down), or a
    queued one whose task was lost (the broker was down at upload). The claim in ingestion makes a duplicate
    task harmless."""
    with transaction.atomic():
        retryable = [VersionStatus.FAILED, VersionStatus.QUEUED]
        updated = DocumentVersion.objects.filter(pk=version.pk, status__in=retryable).update(
            status=VersionStatus.QUEUED,
            progress=0,
            error_code="",
            error_message="",
            updated_at=timezone.now(),
        )
        if not updated:
            raise Conflict("Only a failed or queued version can be retried.")
        version.refresh_from_db()
        publish_version_event(version)
        _enqueue_ingestion(version)
    return version


def _switch_live(document: Document, version: DocumentVersion) -> None:
    Chunk.objects.filter(document=document, live=True).exclude(version=version).update(live=False)
    Chunk.objects.filter(version=version).update(live=True)
    Sentence.objects.filter(document=document, live=True).exclude(version=version).update(live=False)
    Sentence.objects.filter(version=version).update(live=True)
    document.published_version = version
    document.save(update_fields=["published_version", "updated_at"])


@transaction.atomic
def version_publish(
    *, version: DocumentVersion, actor: User | None, effective_date: datetime.date | None = None
) -> DocumentVersion:
    """Makes `version` the one retrieval uses, atomically: no query sees both versions or neither."""
    document = Document.objects.select_for_update().get(pk=version.document_id)
    version = DocumentVersion.objects.select_for_update().get(pk=version.pk)
    if version.status != VersionStatus.READY:
        raise Conflict(
            f"Version {version.number} is {version.get_status_display().lower()}: only a ready "
            "version can be published."
        )
    if document.published_version_id == version.id:
        raise Conflict(f"Version {version.number} is already published.")
    rollback = document.published_version is not None and version.number < document.published_version.number
    _switch_live(document, version)
    tenant_knowledge_epoch_bump(tenant_id=document.tenant_id)  # cached answers of the old text go stale
    version.published_by = actor
    version.published_at = timezone.now()
    if effective_date is not None:
        version.effective_date = effective_date
    elif version.effective_date is None:
        version.effective_date = timezone.localdate()
    version.save(update_fields=["published_by", "published_at", "effective_date", "updated_at"])
    DocumentEvent.objects.create(
        tenant=version.tenant,
        document=document,
        version=version,
        actor=actor,
        action=DocumentEvent.Action.ROLLBACK if rollback else DocumentEvent.Action.PUBLISH,
    )
    publish_version_event(version)
    return version


def version_rollback(*, document: Document, number: int, actor: User | None) -> DocumentVersion:
    version = DocumentVersion.objects.filter(document=document, number=number).first()
    if version is None:
        raise BadRequest(f"{document.title} has no version {number}.")
    return version_publish(version=version, actor=actor)


@transaction.atomic
def document_unpublish(*, document: Document, actor: User | None) -> Document:
    document = Document.objects.select_for_update().get(pk=document.pk)
    if document.published_version_id is None:
        raise Conflict("This document is not published.")
    Chunk.objects.filter(document=document, live=True).update(live=False)
    tenant_knowledge_epoch_bump(tenant_id=document.tenant_id)
    Sentence.objects.filter(document=document, live=True).update(live=False)
    DocumentEvent.objects.create(
        tenant=document.tenant,
        document=document,
        version=document.published_version,
        actor=actor,
        action=DocumentEvent.Action.UNPUBLISH,
    )
    document.published_version = None
    document.save(update_fields=["published_version", "updated_at"])
    return document


@transaction.atomic
def document_delete(*, document: Document, actor: User | None) -> None:
    """Removes the document with every version, chunk and vector. The audit line outlives it."""
    if document.published_version_id is not None:
        tenant_knowledge_epoch_bump(tenant_id=document.tenant_id)
    DocumentEvent.objects.create(
        tenant=document.tenant,
        document=None,
        version=None,
        actor=actor,
        action=DocumentEvent.Action.DELETE,
        detail={"title": document.title},
    )
    document.delete()


@transaction.atomic
def version_redact(*, version: DocumentVersion, actor: User | None) -> DocumentVersion:
    """Replaces every detected PII span in the version's passages with a placeholder, before publishing."""
    from apps.guardrails.pii import pii_redact
    from apps.knowledge.ingestion import refresh_search_vectors

    version = DocumentVersion.objects.select_for_update().get(pk=version.pk)
    if version.status != VersionStatus.READY:
        raise Conflict("Only a ready version can be redacted.")
    if Document.objects.filter(pk=version.document_id, published_version=version).exists():
        tenant_knowledge_epoch_bump(tenant_id=version.tenant_id)  # the live passages' text changes
    chunks = list(Chunk.objects.filter(version=version).order_by("ordinal"))
    for chunk in chunks:
        chunk.text = str(pii_redact(chunk.text))
    Chunk.objects.bulk_update(chunks, ["text"])
    if version_sentences_redact(version=version):
        _enqueue_reembed()
    version.extracted_text = str(pii_redact(version.extracted_text))
    version.pii_redacted = True
    version.save(update_fields=["extracted_text", "pii_redacted", "updated_at"])
    refresh_search_vectors(version)
    DocumentEvent.objects.create(
        tenant=version.tenant,
        document=version.document,
        version=version,
        actor=actor,
        action=DocumentEvent.Action.REDACT,
    )
    publish_version_event(version)
    return version


def knowledge_gap_record(
    *,
    tenant: Tenant,
    question: RedactedText,
    top_similarity: float | None,
    threshold: float,
    nearest: list[dict[str, Any]],
    conversation_ref: Any = None,
    message_ref: Any = None,
) -> KnowledgeGap:
    """Logs a question the assistant abstained on, for editors (redacted: editors don't see PII)."""
    gap = KnowledgeGap.objects.create(
        tenant=tenant,
        question=str(question)[:2000],
        top_similarity=top_similarity,
        threshold=threshold,
        nearest=nearest[:5],
        conversation_ref=conversation_ref,
        message_ref=message_ref,
    )
    payload = event_types.KnowledgeGap(id=str(gap.id)).payload()
    transaction.on_commit(lambda: staff_publish(tenant.id, payload, stream=StaffStream.KNOWLEDGE))
    return gap


def knowledge_gap_resolve(*, tenant: Tenant, gap: KnowledgeGap, actor: User) -> KnowledgeGap:
    if gap.tenant_id != tenant.id:
        raise Conflict("That gap belongs to another workspace.")
    if gap.resolved_at is None:
        gap.resolved_at = timezone.now()
        gap.resolved_by = actor
        gap.save(update_fields=["resolved_at", "resolved_by", "updated_at"])
    return gap
