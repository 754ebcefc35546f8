"""Reads on the knowledge base, tenant-scoped (STYLE rules 1, 3, 4), and retrieval for the assistant."""

from __future__ import annotations

import datetime
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Prefetch, Q, QuerySet

from apps.accounts.models import Tenant
from apps.core.errors import NotFound, TemporarilyUnavailable
from apps.guardrails.pii import RedactedText
from apps.knowledge.models import Chunk, Document, DocumentEvent, DocumentVersion, KnowledgeGap
from apps.llm.embeddings import embedder

logger = logging.getLogger(__name__)

Mode = Literal["hybrid", "vector", "fulltext"]
RRF_K = 60  # reciprocal rank fusion constant: 1 / (RRF_K + rank)
CANDIDATES = 40  # per ranking, before fusion
# Filters (tenant, live, model) would starve a plain HNSW scan; let it keep scanning. ef_search 160 keeps
# recall@10 near 0.97 on 100k chunks where 80 gave 0.94 (bench/retrieval.py, docs/adr/0003).
_HNSW_SETTINGS = "SET LOCAL hnsw.iterative_scan = 'relaxed_order'; SET LOCAL hnsw.ef_search = 160"


class RetrievalUnavailable(TemporarilyUnavailable):
    default_message = "The knowledge base can't be searched right now, so the assistant won't guess."


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


@dataclass(frozen=True)
class Passage:
    chunk_id: uuid.UUID
    document_id: uuid.UUID
    document_title: str
    version_id: uuid.UUID
    version_number: int
    effective_date: datetime.date | None
    section_path: list[str]
    page: int | None
    text: str
    score: float  # fused rank score; higher is better
    similarity: float | None  # cosine similarity of the passage to the query, when vector search found it


@dataclass(frozen=True)
class Retrieval:
    passages: list[Passage]
    top_similarity: float | None
    answerable: bool  # false: the sources probably don't hold the answer; the assistant should abstain
    threshold: float
    mode: Mode
    model: str


_SQL = """
WITH vec AS (
    SELECT id, similarity, row_number() OVER (ORDER BY distance) AS rnk FROM (
        SELECT id, embedding <=> %(q)s::vector AS distance, 1 - (embedding <=> %(q)s::vector) AS similarity
        FROM knowledge_chunk
        WHERE %(use_vec)s AND tenant_id = %(tenant)s AND live AND embedding_model = %(model)s
        ORDER BY embedding <=> %(q)s::vector
        LIMIT %(n)s
    ) nearest
),
fts AS (
    SELECT id, row_number() OVER (ORDER BY rank DESC, id) AS rnk FROM (
        SELECT c.id, ts_rank_cd(c.search_vector, query) AS rank
        FROM knowledge_chunk c, to_tsquery('english', %(tsq)s) query
        WHERE %(use_fts)s AND c.tenant_id = %(tenant)s AND c.live AND c.search_vector @@ query
        ORDER BY rank DESC
        LIMIT %(n)s
    ) matched
),
fused AS (
    SELECT coalesce(vec.id, fts.id) AS id,
           coalesce(1.0 / (%(rrf)s + vec.rnk), 0) + coalesce(1.0 / (%(rrf)s + fts.rnk), 0) AS score,
           vec.similarity
    FROM vec FULL OUTER JOIN fts ON vec.id = fts.id
)
SELECT c.id, c.document_id, d.title, v.id, v.number, v.effective_date, c.section_path, c.page, c.text,
       fused.score, fused.similarity
FROM fused
JOIN knowledge_chunk c ON c.id = fused.id
JOIN knowledge_document d ON d.id = c.document_id
JOIN knowledge_documentversion v ON v.id = c.version_id
ORDER BY fused.score DESC, fused.similarity DESC NULLS LAST
LIMIT %(k)s
"""

# The assistant's retrieval (docs/adr/0003): the k nearest passages. Title, version number and date come
# from scalar subqueries run for the k rows: the planner then has no join order to search, which halves
# planning time, a third of this statement's cost over a bare index scan.
_VECTOR_SQL = """
SELECT id, document_id, (SELECT title FROM knowledge_document WHERE id = nearest.document_id), version_id,
       (SELECT number FROM knowledge_documentversion WHERE id = nearest.version_id),
       (SELECT effective_date FROM knowledge_documentversion WHERE id = nearest.version_id),
       section_path, page, text, 1.0 / (%(rrf)s + row_number() OVER (ORDER BY distance)), 1 - distance
FROM (
    SELECT id, document_id, version_id, section_path, page, text, embedding <=> %(q)s::vector AS distance
    FROM knowledge_chunk
    WHERE tenant_id = %(tenant)s AND live AND embedding_model = %(model)s
    ORDER BY distance
    LIMIT %(k)s
) nearest
ORDER BY distance
"""

# While chunks_reembed catches up with a changed model, passages without a vector of the configured model
# are found by full text, ranked among themselves and interleaved by rank with the vector results. The two
# range conditions stand for `embedding_model <> model`, which a btree cannot search, so the planner probes
# chunk_live_idx instead of ranking every full-text match. The tsquery is built inside the statement.
_VECTOR_AND_STALE_SQL = """
WITH vec AS (
    SELECT id, distance, row_number() OVER (ORDER BY distance) AS rnk FROM (
        SELECT id, embedding <=> %(q)s::vector AS distance
        FROM knowledge_chunk
        WHERE tenant_id = %(tenant)s AND live AND embedding_model = %(model)s
        ORDER BY distance
        LIMIT %(k)s
    ) nearest
),
stale AS (
    SELECT id, row_number() OVER (ORDER BY rank DESC, id) AS rnk FROM (
        SELECT c.id, ts_rank_cd(c.search_vector, query) AS rank
        FROM knowledge_chunk c,
             to_tsquery('english', nullif((
                 SELECT string_agg(quote_literal(lexeme), ' | ')
                 FROM unnest(tsvector_to_array(to_tsvector('english', %(text)s))) AS lexeme
             ), '')) AS query
        WHERE c.tenant_id = %(tenant)s AND c.live
          AND (c.embedding_model < %(model)s OR c.embedding_model > %(model)s)
          AND c.search_vector @@ query
        ORDER BY rank DESC
        LIMIT %(k)s
    ) matched
),
best AS (
    SELECT id, 1.0 / (%(rrf)s + rnk) AS score, 1 - distance AS similarity FROM vec
    UNION ALL
    SELECT id, 1.0 / (%(rrf)s + rnk), NULL FROM stale
    ORDER BY score DESC, similarity DESC NULLS LAST
    LIMIT %(k)s
)
SELECT c.id, c.document_id, (SELECT title FROM knowledge_document WHERE id = c.document_id), c.version_id,
       (SELECT number FROM knowledge_documentversion WHERE id = c.version_id),
       (SELECT effective_date FROM knowledge_documentversion WHERE id = c.version_id),
       c.section_path, c.page, c.text, best.score, best.similarity
FROM best
JOIN knowledge_chunk c ON c.id = best.id
ORDER BY best.score DESC, best.similarity DESC NULLS LAST
"""

# (tenant id, model) pairs known to have no live passage without a vector of that model.
_fully_embedded: set[tuple[uuid.UUID, str]] = set()


def _has_stale_passages(tenant: Tenant, model: str) -> bool:
    """Whether some live passages of the tenant still lack a vector of `model` (re-embedding under way).

    Remembered per process once false: passages are written only with the configured model, and changing
    the model means restarting the processes, so a fully embedded tenant stays fully embedded.
    """
    key = (tenant.id, model)
    if key in _fully_embedded:
        return False
    stale = (
        Chunk.objects.filter(tenant=tenant, live=True)
        .filter(Q(embedding_model__lt=model) | Q(embedding_model__gt=model))
        .exists()
    )
    if not stale:
        _fully_embedded.add(key)
    return stale


def _vector_rows(
    *, tenant: Tenant, query: RedactedText, vector: list[float], model: str, k: int
) -> list[tuple[Any, ...]]:
    sql = _VECTOR_AND_STALE_SQL if _has_stale_passages(tenant, model) else _VECTOR_SQL
    params: dict[str, Any] = {
        "q": str(vector),
        "text": str(query),
        "tenant": tenant.id,
        "model": model,
        "k": k,
        "rrf": RRF_K,
    }
    with connection.cursor() as cursor:
        # Django's cursor binds on the client, so this goes as one simple-protocol message, which PostgreSQL
        # runs as one implicit transaction: the SET LOCALs hold for this query and end with it, in one round
        # trip instead of BEGIN, two SETs, the tsquery, the query and COMMIT.
        cursor.execute(f"{_HNSW_SETTINGS}; {sql}", params)
        while cursor.description is None and cursor.nextset():
            pass  # the SETs' empty results
        return cursor.fetchall()


def _ranked_rows(
    *, tenant: Tenant, query: RedactedText, vector: list[float] | None, model: str, k: int, mode: Mode
) -> list[tuple[Any, ...]]:
    """Vector and full-text rankings fused (hybrid), or full text alone: the statement of before ADR 0003."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_HNSW_SETTINGS)
        cursor.execute(_TSQUERY_SQL, [str(query)])
        row = cursor.fetchone()
        tsquery = row[0] if row else ""
        use_fts = mode != "vector" and bool(tsquery)
        cursor.execute(
            _SQL,
            {
                "q": str(vector) if vector is not None else "[0]",
                "use_vec": vector is not None,
                "use_fts": use_fts,
                "tsq": tsquery or "''",
                "tenant": tenant.id,
                "model": model,
                "n": max(CANDIDATES, k),
                "rrf": RRF_K,
                "k": k,
            },
        )
        return cursor.fetchall()


# The query's words ORed, so a question matches passages sharing any of its meaningful words.
_TSQUERY_SQL = (
    "SELECT coalesce(string_agg(quote_literal(lexeme), ' | '), '') "
    "FROM unnest(tsvector_to_array(to_tsvector('english', %s))) AS lexeme"
)


def knowledge_search(
    *,
    tenant: Tenant,
    query: RedactedText,
    k: int = 5,
    mode: Mode = "vector",
    threshold: float | None = None,
    query_vector: list[float] | None = None,
) -> Retrieval:
    """Passages of the tenant's published versions that best answer `query`, with an abstain signal.

    "vector" is the assistant's mode. "hybrid" (RRF of vector and full text) and "fulltext" remain for
    comparison in bench/answer_quality.py: on the labelled set fusion ranks below vectors alone, and its
    full-text branch ranks every passage sharing a word with the question (docs/adr/0003).

    Raises RetrievalUnavailable if the query cannot be embedded or the index cannot be read: the assistant
    must then say so rather than answer without sources.
    """
    limit = settings.KB_ABSTAIN_SIMILARITY if threshold is None else threshold
    model = settings.EMBEDDINGS_MODEL
    vector: list[float] | None = query_vector  # given by callers that embedded the query already
    if mode != "fulltext" and vector is None:
        try:
            [vector] = embedder().embed([str(query)])
        except Exception as exc:
            logger.warning("query embedding failed: %s", exc.__class__.__name__)
            raise RetrievalUnavailable() from exc
    try:
        if mode == "vector" and vector is not None:
            rows = _vector_rows(tenant=tenant, query=query, vector=vector, model=model, k=k)
        else:
            rows = _ranked_rows(tenant=tenant, query=query, vector=vector, model=model, k=k, mode=mode)
    except DatabaseError as exc:
        logger.warning("knowledge search failed: %s", exc.__class__.__name__)
        raise RetrievalUnavailable() from exc
    passages = [
        Passage(
            chunk_id=r[0],
            document_id=r[1],
            document_title=r[2],
            version_id=r[3],
            version_number=r[4],
            effective_date=r[5],
            section_path=list(r[6] or []),
            page=r[7],
            text=r[8],
            score=float(r[9]),
            similarity=None if r[10] is None else float(r[10]),
        )
        for r in rows
    ]
    similarities = [p.similarity for p in passages if p.similarity is not None]
    top = max(similarities) if similarities else None
    # Full-text scores are not calibrated: without vectors, any passage found counts as grounding.
    answerable = bool(passages) if mode == "fulltext" else top is not None and top >= limit
    return Retrieval(
        passages=passages, top_similarity=top, answerable=answerable, threshold=limit, mode=mode, model=model
    )


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
