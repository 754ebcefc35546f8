"""Reads on the knowledge base, tenant-scoped (STYLE rules 1, 3, 4). Retrieval for the assistant is in
retrieval.py (re-exported here: `knowledge_search`, `Passage`, `Retrieval`, `RetrievalUnavailable`)."""

from __future__ import annotations

import uuid

from django.db.models import Prefetch, QuerySet

from apps.accounts.models import Tenant
from apps.core.errors import NotFound
from apps.knowledge.models import Chunk, Document, DocumentEvent, DocumentVersion, KnowledgeGap, Sentence

# Retrieval (its SQL and the functions running it) lives in retrieval.py; these names stay importable
# from here for the callers that knew them here.
from apps.knowledge.retrieval import (
    Passage,
    Retrieval,
    RetrievalUnavailable,
    knowledge_search,
)

__all__ = [
    "Passage",
    "Retrieval",
    "RetrievalUnavailable",
    "access_document",
    "access_gap",
    "access_version",
    "document_history",
    "document_versions",
    "documents_for_tenant",
    "documents_with_versions",
    "knowledge_gaps",
    "knowledge_search",
    "version_chunks",
    "version_sentences",
]


def documents_for_tenant(*, tenant: Tenant) -> QuerySet[Document]:
    return Document.objects.for_tenant(tenant).select_related("published_version").order_by("title")


def documents_with_versions(*, tenant: Tenant) -> QuerySet[Document]:
    """Documents with their versions newest first in `newest_first` (one extra query for all of them)."""
    versions = DocumentVersion.objects.defer("content", "extracted_text").order_by("-number")
    return documents_for_tenant(tenant=tenant).prefetch_related(
        Prefetch("versions", queryset=versions, to_attr="newest_first")
    )


def access_document(*, tenant: Tenant, document_id: uuid.UUID | str) -> Document:
    try:
        return Document.objects.for_tenant(tenant).select_related("published_version").get(pk=document_id)
    except (Document.DoesNotExist, ValueError, TypeError):
        raise NotFound() from None


def access_version(*, tenant: Tenant, version_id: uuid.UUID | str) -> DocumentVersion:
    try:
        # The uploaded file (up to 20 MB) is only read by ingestion: pages and status polls don't load it.
        return (
            DocumentVersion.objects.for_tenant(tenant)
            .select_related("document")
            .defer("content")
            .get(pk=version_id)
        )
    except (DocumentVersion.DoesNotExist, ValueError, TypeError):
        raise NotFound() from None


def document_versions(*, document: Document) -> QuerySet[DocumentVersion]:
    return (
        DocumentVersion.objects.filter(document=document)
        .select_related("created_by", "published_by")
        .defer("content", "extracted_text")
        .order_by("-number")
    )


def document_history(*, document: Document) -> QuerySet[DocumentEvent]:
    return DocumentEvent.objects.filter(document=document).select_related("actor", "version")


def version_chunks(*, version: DocumentVersion) -> QuerySet[Chunk]:
    return Chunk.objects.filter(version=version).order_by("ordinal").defer("embedding", "search_vector")


def version_sentences(*, version: DocumentVersion) -> QuerySet[Sentence]:
    return Sentence.objects.filter(version=version).order_by("ordinal").defer("embedding", "search_vector")


def knowledge_gaps(*, tenant: Tenant, include_resolved: bool = False) -> QuerySet[KnowledgeGap]:
    rows = KnowledgeGap.objects.for_tenant(tenant).select_related("resolved_by")
    if not include_resolved:
        rows = rows.filter(resolved_at__isnull=True)
    return rows.order_by("-created_at")


def access_gap(*, tenant: Tenant, gap_id: uuid.UUID | str) -> KnowledgeGap:
    try:
        key = uuid.UUID(str(gap_id))
    except ValueError:
        raise NotFound() from None
    gap = KnowledgeGap.objects.for_tenant(tenant).filter(id=key).first()
    if gap is None:
        raise NotFound()
    return gap
