"""Writes on the knowledge base: upload, publish, rollback, redact, delete (STYLE rules 1, 2, 5).

Ingestion itself (parse → scan → chunk → embed → index) lives in `ingestion.py` and runs in Celery. The
editors' writes are audited actions in `actions.py` (permission check, change and audit row in one
transaction); the functions here keep their names for callers and hold the helpers the actions share.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from apps.accounts.models import Tenant, User
from apps.core import event_types
from apps.core.errors import BadRequest
from apps.core.realtime import StaffStream, staff_publish
from apps.guardrails.pii import RedactedText
from apps.knowledge.models import (
    Chunk,
    Document,
    DocumentVersion,
    KnowledgeGap,
    Sentence,
)
from apps.knowledge.parsing import Limits

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
    """Stores the file as a new draft version and queues ingestion (actions.DocumentUpload)."""
    from apps.knowledge import actions

    return actions.DocumentUpload(
        tenant=tenant,
        actor=actor,
        upload=upload,
        document=document,
        title=title,
        effective_date=effective_date,
    ).execute()


def version_retry(*, version: DocumentVersion, actor: User | None) -> DocumentVersion:
    """Queues a failed version again, or a queued one whose task was lost (actions.VersionRetry)."""
    from apps.knowledge import actions

    return actions.VersionRetry(tenant=version.tenant, actor=actor, version=version).execute()


def _switch_live(document: Document, version: DocumentVersion) -> None:
    Chunk.objects.filter(document=document, live=True).exclude(version=version).update(live=False)
    Chunk.objects.filter(version=version).update(live=True)
    Sentence.objects.filter(document=document, live=True).exclude(version=version).update(live=False)
    Sentence.objects.filter(version=version).update(live=True)
    document.published_version = version
    document.save(update_fields=["published_version", "updated_at"])


# The writes below are audited actions (apps/knowledge/actions.py): these functions keep the names and
# arguments callers know. Imported on call: the actions build on this module's helpers.


def version_publish(
    *, version: DocumentVersion, actor: User | None, effective_date: datetime.date | None = None
) -> DocumentVersion:
    """Makes `version` the one retrieval uses, atomically: no query sees both versions or neither."""
    from apps.knowledge import actions

    return actions.VersionPublish(
        tenant=version.tenant, actor=actor, version=version, effective_date=effective_date
    ).execute()


def version_rollback(*, document: Document, number: int, actor: User | None) -> DocumentVersion:
    from apps.knowledge import actions

    return actions.VersionRollback(
        tenant=document.tenant, actor=actor, document=document, number=number
    ).execute()


def document_unpublish(*, document: Document, actor: User | None) -> Document:
    from apps.knowledge import actions

    return actions.DocumentUnpublish(tenant=document.tenant, actor=actor, document=document).execute()


def document_delete(*, document: Document, actor: User | None) -> None:
    """Removes the document with every version, chunk and vector. The audit rows outlive it."""
    from apps.knowledge import actions

    actions.DocumentDelete(tenant=document.tenant, actor=actor, document=document).execute()


def version_redact(*, version: DocumentVersion, actor: User | None) -> DocumentVersion:
    """Replaces every detected PII span in the version's passages with a placeholder, before publishing."""
    from apps.knowledge import actions

    return actions.VersionRedact(tenant=version.tenant, actor=actor, version=version).execute()


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


def knowledge_gap_resolve(*, tenant: Tenant, gap: KnowledgeGap, actor: User | None) -> KnowledgeGap:
    from apps.knowledge import actions

    return actions.GapResolve(tenant=tenant, actor=actor, gap=gap).execute()
