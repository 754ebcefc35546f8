"""Editors' writes on the knowledge base as audited actions (apps/audit/actions.py).

Each write is a class: `check()` decides whether the actor may do it (an editor or admin of the company the
document belongs to), `perform()` makes the change, and `execute()` writes both the change and its audit row
in one transaction, so a refused or failed write leaves neither. The functions of `services.py` keep their
names and arguments and run these actions; views and APIs call them with the signed-in user.

`actor=None` is the desk acting on its own (the demo seed, `manage.py kb_ingest`, test setup): nobody to
check, and the row says "system". Audit rows carry ids and version numbers, never a document's text or title.
"""

from __future__ import annotations

import datetime
import hashlib
from pathlib import PurePath
from typing import Any, TypeVar

from django.db.models import Max
from django.utils import timezone

from apps.accounts.models import Role, Tenant, User
from apps.accounts.selectors import access_tenant
from apps.accounts.services import tenant_knowledge_epoch_bump
from apps.audit.actions import Action
from apps.core.errors import BadRequest, Conflict, NotFound
from apps.knowledge import services
from apps.knowledge.models import (
    Chunk,
    Document,
    DocumentEvent,
    DocumentVersion,
    KnowledgeGap,
    Sentence,
    VersionStatus,
)
from apps.knowledge.parsing import IngestionError, sniff
from apps.knowledge.sentences import version_sentences_redact

T = TypeVar("T")
EDITORS = (Role.EDITOR,)  # admins hold every role (access_tenant)


class KnowledgeAction(Action[T]):
    """An editor's write on one company's knowledge base."""

    tenant: Tenant
    actor: User | None

    def check(self) -> None:
        if self.actor is not None:
            # The same rule as the editor pages: a stranger gets NotFound, an agent Forbidden.
            access_tenant(actor=self.actor, slug=self.tenant.slug, roles=EDITORS)

    def _own(self, obj: Document | DocumentVersion | KnowledgeGap) -> None:
        """Callers resolve objects tenant-scoped; this holds the line if one forgot."""
        if obj.tenant_id != self.tenant.id:
            raise NotFound()


class DocumentUpload(KnowledgeAction[DocumentVersion]):
    """A file stored as a new draft version (1 for a new document, N+1 otherwise), queued for ingestion.

    Size and type are checked before anything is stored, so the editor hears at once; everything that needs
    parsing fails later, visibly, on the version."""

    action = "knowledge.upload"
    target_type = "DocumentVersion"

    def check(self) -> None:
        super().check()
        document: Document | None = self.params.get("document")
        if document is not None and document.tenant_id != self.tenant.id:
            raise BadRequest("That document belongs to another company.")

    def perform(self) -> DocumentVersion:
        upload: services.Upload = self.params["upload"]
        document: Document | None = self.params.get("document")
        title: str | None = self.params.get("title")
        filename = PurePath(upload.filename.replace("\\", "/")).name[:255] or "upload"
        services.upload_size_check(filename=filename, size=len(upload.data))
        try:
            kind = sniff(upload.data, filename)
        except IngestionError as exc:
            raise BadRequest(f"{filename}: {exc.message}") from exc
        if document is None:
            document = Document.objects.create(
                tenant=self.tenant, title=(title or PurePath(filename).stem)[:300], created_by=self.actor
            )
        else:
            # Serialises concurrent uploads of the same document so version numbers never collide.
            Document.objects.select_for_update().filter(pk=document.pk).get()
        latest = DocumentVersion.objects.filter(document=document).aggregate(n=Max("number"))["n"] or 0
        version = DocumentVersion.objects.create(
            tenant=self.tenant,
            document=document,
            number=latest + 1,
            filename=filename,
            kind=kind,
            size_bytes=len(upload.data),
            sha256=hashlib.sha256(upload.data).hexdigest(),
            content=upload.data,
            effective_date=self.params.get("effective_date"),
            created_by=self.actor,
        )
        DocumentEvent.objects.create(
            tenant=self.tenant,
            document=document,
            version=version,
            actor=self.actor,
            action=DocumentEvent.Action.UPLOAD,
        )
        services.publish_version_event(version)
        services._enqueue_ingestion(version)
        return version

    def audit_data(self, result: DocumentVersion) -> dict[str, Any]:
        return {
            "document_id": result.document_id,
            "version": result.number,
            "kind": result.kind,
            "size_bytes": result.size_bytes,
        }


class VersionRetry(KnowledgeAction[DocumentVersion]):
    """A failed version queued again (after a transient fault such as the embedding server being down), or a
    queued one whose task was lost (the broker was down at upload). The claim in ingestion makes a duplicate
    task harmless."""

    action = "knowledge.retry"
    target_type = "DocumentVersion"

    def check(self) -> None:
        super().check()
        self._own(self.params["version"])

    def perform(self) -> DocumentVersion:
        version: DocumentVersion = self.params["version"]
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
        services.publish_version_event(version)
        services._enqueue_ingestion(version)
        return version

    def audit_data(self, result: DocumentVersion) -> dict[str, Any]:
        return {"document_id": result.document_id, "version": result.number}


def _version_publish(
    *, version: DocumentVersion, actor: User | None, effective_date: datetime.date | None
) -> tuple[DocumentVersion, int | None]:
    """Makes `version` the one retrieval uses, atomically: no query sees both versions or neither. Returns it
    with the number of the version published before (None if none was)."""
    document = Document.objects.select_for_update().get(pk=version.document_id)
    version = DocumentVersion.objects.select_for_update().get(pk=version.pk)
    if version.status != VersionStatus.READY:
        raise Conflict(
            f"Version {version.number} is {version.get_status_display().lower()}: only a ready "
            "version can be published."
        )
    if document.published_version_id == version.id:
        raise Conflict(f"Version {version.number} is already published.")
    before = document.published_version.number if document.published_version is not None else None
    services._switch_live(document, version)
    tenant_knowledge_epoch_bump(tenant_id=document.tenant_id)  # cached answers of the old text go stale
    version.published_by = actor
    version.published_at = timezone.now()
    if effective_date is not None:
        version.effective_date = effective_date
    elif version.effective_date is None:
        version.effective_date = timezone.localdate()
    version.save(update_fields=["published_by", "published_at", "effective_date", "updated_at"])
    rollback = before is not None and version.number < before
    DocumentEvent.objects.create(
        tenant=version.tenant,
        document=document,
        version=version,
        actor=actor,
        action=DocumentEvent.Action.ROLLBACK if rollback else DocumentEvent.Action.PUBLISH,
    )
    services.publish_version_event(version)
    return version, before


class VersionPublish(KnowledgeAction[DocumentVersion]):
    action = "knowledge.publish"
    target_type = "DocumentVersion"
    from_version: int | None = None

    def check(self) -> None:
        super().check()
        self._own(self.params["version"])

    def perform(self) -> DocumentVersion:
        version, self.from_version = _version_publish(
            version=self.params["version"], actor=self.actor, effective_date=self.params.get("effective_date")
        )
        return version

    def audit_data(self, result: DocumentVersion) -> dict[str, Any]:
        return {
            "document_id": result.document_id,
            "version": result.number,
            "from_version": self.from_version,
            "to_version": result.number,
        }


class VersionRollback(VersionPublish):
    """An earlier version, by number, published again."""

    action = "knowledge.rollback"

    def check(self) -> None:
        KnowledgeAction.check(self)
        self._own(self.params["document"])

    def perform(self) -> DocumentVersion:
        document: Document = self.params["document"]
        number: int = self.params["number"]
        version = DocumentVersion.objects.filter(document=document, number=number).first()
        if version is None:
            raise BadRequest(f"{document.title} has no version {number}.")
        version, self.from_version = _version_publish(version=version, actor=self.actor, effective_date=None)
        return version


class DocumentUnpublish(KnowledgeAction[Document]):
    action = "knowledge.unpublish"
    target_type = "Document"
    from_version: int | None = None

    def check(self) -> None:
        super().check()
        self._own(self.params["document"])

    def perform(self) -> Document:
        document = Document.objects.select_for_update().get(pk=self.params["document"].pk)
        if document.published_version is None:
            raise Conflict("This document is not published.")
        self.from_version = document.published_version.number
        Chunk.objects.filter(document=document, live=True).update(live=False)
        tenant_knowledge_epoch_bump(tenant_id=document.tenant_id)
        Sentence.objects.filter(document=document, live=True).update(live=False)
        DocumentEvent.objects.create(
            tenant=document.tenant,
            document=document,
            version=document.published_version,
            actor=self.actor,
            action=DocumentEvent.Action.UNPUBLISH,
        )
        document.published_version = None
        document.save(update_fields=["published_version", "updated_at"])
        return document

    def audit_data(self, result: Document) -> dict[str, Any]:
        return {"document_id": result.id, "from_version": self.from_version}


class DocumentDelete(KnowledgeAction[None]):
    """The document removed with every version, chunk and vector. Its audit row outlives it."""

    action = "knowledge.delete"
    facts: dict[str, Any]

    def check(self) -> None:
        super().check()
        self._own(self.params["document"])

    def perform(self) -> None:
        document: Document = self.params["document"]
        published = document.published_version
        self.facts = {
            "document_id": document.id,
            "versions": DocumentVersion.objects.filter(document=document).count(),
            "published_version": published.number if published is not None else None,
        }
        if published is not None:
            tenant_knowledge_epoch_bump(tenant_id=document.tenant_id)
        DocumentEvent.objects.create(
            tenant=document.tenant,
            document=None,
            version=None,
            actor=self.actor,
            action=DocumentEvent.Action.DELETE,
            detail={"title": document.title},
        )
        document.delete()

    def audit_target(self, result: None) -> tuple[str, str]:
        return "Document", str(self.facts["document_id"])

    def audit_data(self, result: None) -> dict[str, Any]:
        return self.facts


class VersionRedact(KnowledgeAction[DocumentVersion]):
    """Every detected PII span in the version's passages replaced with a placeholder, before publishing."""

    action = "knowledge.redact"
    target_type = "DocumentVersion"
    passages = 0

    def check(self) -> None:
        super().check()
        self._own(self.params["version"])

    def perform(self) -> DocumentVersion:
        from apps.guardrails.pii import pii_redact
        from apps.knowledge.ingestion import refresh_search_vectors

        version = DocumentVersion.objects.select_for_update().get(pk=self.params["version"].pk)
        if version.status != VersionStatus.READY:
            raise Conflict("Only a ready version can be redacted.")
        if Document.objects.filter(pk=version.document_id, published_version=version).exists():
            tenant_knowledge_epoch_bump(tenant_id=version.tenant_id)  # the live passages' text changes
        chunks = list(Chunk.objects.filter(version=version).order_by("ordinal"))
        for chunk in chunks:
            chunk.text = str(pii_redact(chunk.text))
        Chunk.objects.bulk_update(chunks, ["text"])
        self.passages = len(chunks)
        if version_sentences_redact(version=version):
            services._enqueue_reembed()
        version.extracted_text = str(pii_redact(version.extracted_text))
        version.pii_redacted = True
        version.save(update_fields=["extracted_text", "pii_redacted", "updated_at"])
        refresh_search_vectors(version)
        DocumentEvent.objects.create(
            tenant=version.tenant,
            document=version.document,
            version=version,
            actor=self.actor,
            action=DocumentEvent.Action.REDACT,
        )
        services.publish_version_event(version)
        return version

    def audit_data(self, result: DocumentVersion) -> dict[str, Any]:
        return {"document_id": result.document_id, "version": result.number, "passages": self.passages}


class GapResolve(KnowledgeAction[KnowledgeGap]):
    action = "knowledge.gap_resolve"
    target_type = "KnowledgeGap"
    already = False

    def check(self) -> None:
        super().check()
        if self.params["gap"].tenant_id != self.tenant.id:
            raise Conflict("That gap belongs to another workspace.")

    def perform(self) -> KnowledgeGap:
        gap: KnowledgeGap = self.params["gap"]
        self.already = gap.resolved_at is not None
        if not self.already:
            gap.resolved_at = timezone.now()
            gap.resolved_by = self.actor
            gap.save(update_fields=["resolved_at", "resolved_by", "updated_at"])
        return gap

    def audit_data(self, result: KnowledgeGap) -> dict[str, Any]:
        return {"gap_id": result.id, "already_resolved": self.already}
