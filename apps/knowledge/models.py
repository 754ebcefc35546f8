"""Policy documents, their versions, and the passages (chunks) retrieval searches.

A document has many versions; exactly one (or none) is published, and only the chunks of that version are
`live`. Publishing flips `Document.published_version` and the chunks' `live` flags in one transaction, so
retrieval switches atomically. Vectors carry the name of the model that made them, and retrieval only
compares vectors of the configured model.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from pgvector.django import HnswIndex, VectorField

from apps.accounts.models import Tenant, TenantScopedModel

EMBEDDING_DIMENSIONS = 384  # the column's size; a model of another size needs a migration (docs/adr/0003)


class Document(TenantScopedModel):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="documents")
    title = models.CharField(max_length=300)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    published_version = models.ForeignKey(
        "DocumentVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["title"]
        indexes = [models.Index(fields=["tenant", "title"])]

    def __str__(self) -> str:
        return self.title


class VersionStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    PARSING = "parsing", "Parsing"
    EMBEDDING = "embedding", "Embedding"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class DocumentVersion(TenantScopedModel):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=VersionStatus.choices, default=VersionStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)  # percent, for the editor's progress bar
    error_code = models.CharField(max_length=32, blank=True)
    error_message = models.TextField(blank=True)

    filename = models.CharField(max_length=255)
    kind = models.CharField(max_length=16, blank=True)  # sniffed from the content: pdf, docx, html, ...
    size_bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    content = models.BinaryField()  # the file as uploaded; kept so every version can be re-processed

    extracted_title = models.CharField(max_length=300, blank=True)
    extracted_text = models.TextField(blank=True)  # for the editor's preview
    page_count = models.PositiveIntegerField(null=True, blank=True)
    chunk_count = models.PositiveIntegerField(default=0)
    # What the PII scan found: [{"entity_type": ..., "count": ...}], never the values themselves.
    pii_findings = models.JSONField(default=list, blank=True)
    pii_redacted = models.BooleanField(default=False)
    warnings = models.JSONField(default=list, blank=True)  # e.g. "Page 7 could not be read and was left out."
    embedding_model = models.CharField(max_length=200, blank=True)
    timings = models.JSONField(default=dict, blank=True)

    effective_date = models.DateField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["document", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["document", "number"], name="uniq_document_version_number"),
            models.CheckConstraint(condition=models.Q(progress__lte=100), name="version_progress_percent"),
        ]

    def __str__(self) -> str:
        return f"{self.document_id} v{self.number}"


class Chunk(TenantScopedModel):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    version = models.ForeignKey(DocumentVersion, on_delete=models.CASCADE, related_name="chunks")
    ordinal = models.PositiveIntegerField()
    text = models.TextField()  # PII-redacted when the editor chose to redact before publishing
    section_path = ArrayField(models.CharField(max_length=300), default=list, blank=True)
    page = models.PositiveIntegerField(null=True, blank=True)
    token_estimate = models.PositiveIntegerField(default=0)
    live = models.BooleanField(default=False)  # true exactly when its version is the published one
    search_vector = SearchVectorField(null=True)
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS, null=True)
    embedding_model = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["version", "ordinal"]
        constraints = [models.UniqueConstraint(fields=["version", "ordinal"], name="uniq_chunk_ordinal")]
        indexes = [
            GinIndex(fields=["search_vector"], name="chunk_search_gin"),
            HnswIndex(
                name="chunk_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            models.Index(fields=["tenant", "live", "embedding_model"], name="chunk_live_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.version_id}#{self.ordinal}"


class Sentence(TenantScopedModel):
    """One unit of evidence the assistant can quote: a sentence, list item, table row or lead-in line of a
    version's chunks (parsing/sentences.py), stored once even where neighbouring chunks overlap.

    `text` is a verbatim slice of its chunk's text (so it is redacted when the chunk is). Its neighbours are
    the sentences of the same version and `section_ordinal` with the adjacent `ordinal`. `live` follows the
    version exactly as `Chunk.live` does, flipped in the same transactions.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="sentences")
    version = models.ForeignKey(DocumentVersion, on_delete=models.CASCADE, related_name="sentences")
    chunk = models.ForeignKey(
        Chunk, on_delete=models.CASCADE, related_name="sentences"
    )  # the first holding it
    ordinal = models.PositiveIntegerField()  # order within the version
    # Consecutive chunks with one section path form a section; its sentences share this number.
    section_ordinal = models.PositiveIntegerField(default=0)
    text = models.TextField()
    section_path = ArrayField(models.CharField(max_length=300), default=list, blank=True)
    page = models.PositiveIntegerField(null=True, blank=True)
    live = models.BooleanField(default=False)  # true exactly when its version is the published one
    search_vector = SearchVectorField(null=True)  # title and section (weight A), text (B)
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS, null=True)
    embedding_model = models.CharField(max_length=200, blank=True)  # empty until embedded

    class Meta:
        ordering = ["version", "ordinal"]
        constraints = [models.UniqueConstraint(fields=["version", "ordinal"], name="uniq_sentence_ordinal")]
        indexes = [
            GinIndex(fields=["search_vector"], name="sentence_search_gin"),
            HnswIndex(
                name="sentence_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            models.Index(fields=["tenant", "live", "embedding_model"], name="sentence_live_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.version_id}.{self.ordinal}"


class DocumentEvent(TenantScopedModel):
    """Who did what to which version, and when: the publication history editors and auditors read."""

    class Action(models.TextChoices):
        UPLOAD = "upload", "Uploaded"
        PUBLISH = "publish", "Published"
        ROLLBACK = "rollback", "Rolled back to"
        UNPUBLISH = "unpublish", "Unpublished"
        REDACT = "redact", "Redacted PII in"
        DELETE = "delete", "Deleted"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    document = models.ForeignKey(Document, null=True, on_delete=models.SET_NULL, related_name="events")
    version = models.ForeignKey(DocumentVersion, null=True, on_delete=models.SET_NULL, related_name="events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=16, choices=Action.choices)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "-created_at"])]


class KnowledgeGap(TenantScopedModel):
    """A question the assistant abstained on because no published passage supported an answer.

    Editors read these to learn which policies are missing. The question is stored redacted: the gap list
    is shown to editors, who have no right to customers' personal data.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    question = models.TextField()
    top_similarity = models.FloatField(null=True, blank=True)
    threshold = models.FloatField()
    # Where it was asked (a conversation id); kept as a plain value because knowledge sits below
    # conversations and never imports it.
    conversation_ref = models.UUIDField(null=True, blank=True)
    message_ref = models.UUIDField(null=True, blank=True)
    nearest = models.JSONField(default=list, blank=True)  # [{"title", "section", "similarity"}]
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="kgap_tenant_recent_idx")]

    def __str__(self) -> str:
        return f"knowledge gap {self.id}"
