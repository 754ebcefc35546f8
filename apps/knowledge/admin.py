"""Django admin for platform operators: read-mostly views of documents and versions."""

from django.contrib import admin
from django.http import HttpRequest

from apps.knowledge.models import Document, DocumentEvent, DocumentVersion, KnowledgeGap, Sentence


class VersionInline(admin.TabularInline[DocumentVersion, Document]):
    model = DocumentVersion
    extra = 0
    can_delete = False
    fields = ["number", "status", "progress", "filename", "kind", "chunk_count", "published_at", "error_code"]
    readonly_fields = [
        "number",
        "status",
        "progress",
        "filename",
        "kind",
        "chunk_count",
        "published_at",
        "error_code",
    ]
    show_change_link = True


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin[Document]):
    list_display = ["title", "tenant", "published_version", "updated_at"]
    list_filter = ["tenant"]
    search_fields = ["title"]
    readonly_fields = ["published_version", "created_by", "created_at", "updated_at"]
    inlines = [VersionInline]


@admin.register(DocumentVersion)
class DocumentVersionAdmin(admin.ModelAdmin[DocumentVersion]):
    list_display = ["document", "number", "status", "progress", "kind", "chunk_count", "created_at"]
    list_filter = ["status", "kind", "tenant"]
    search_fields = ["document__title", "filename"]
    exclude = ["content"]
    readonly_fields = [
        "tenant",
        "document",
        "number",
        "status",
        "progress",
        "error_code",
        "error_message",
        "filename",
        "kind",
        "size_bytes",
        "sha256",
        "extracted_title",
        "page_count",
        "chunk_count",
        "pii_findings",
        "pii_redacted",
        "embedding_model",
        "timings",
        "created_by",
        "published_by",
        "published_at",
    ]


@admin.register(DocumentEvent)
class DocumentEventAdmin(admin.ModelAdmin[DocumentEvent]):
    list_display = ["action", "document", "version", "actor", "created_at"]
    list_filter = ["action", "tenant"]
    readonly_fields = ["tenant", "document", "version", "actor", "action", "detail"]


@admin.register(KnowledgeGap)
class KnowledgeGapAdmin(admin.ModelAdmin[KnowledgeGap]):
    list_display = ["question", "tenant", "top_similarity", "threshold", "created_at", "resolved_at"]
    list_filter = ["tenant"]
    search_fields = ["question"]
    readonly_fields = ["tenant", "question", "top_similarity", "threshold", "nearest", "conversation_ref"]


@admin.register(Sentence)
class SentenceAdmin(admin.ModelAdmin[Sentence]):
    """Read-only: sentence units are made by ingestion and follow their version; editing one here would
    leave its vector and full-text entry describing other words."""

    list_display = ["text", "document", "version", "ordinal", "live", "embedding_model"]
    list_filter = ["live", "tenant"]
    search_fields = ["text", "document__title"]
    list_select_related = ["document", "version"]
    exclude = ["embedding", "search_vector"]
    readonly_fields = [
        "tenant",
        "document",
        "version",
        "chunk",
        "ordinal",
        "section_ordinal",
        "text",
        "section_path",
        "page",
        "live",
        "embedding_model",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Sentence | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Sentence | None = None) -> bool:
        return False
