"""Retrieval: every statement that searches the knowledge base, and the functions that run them.

- `knowledge_search`: the passages (chunks) that best answer a question, with an abstain signal.
- `sentence_candidates` / `sentence_neighbours`: sentence units (models.Sentence) for evidence-first
  answers, and the sentences around the ones chosen.
- `Retriever` / `retriever()`: what the assistant calls; the configured one (`ASSISTANT_RETRIEVER`)
  returns passages and sentence candidates for one question vector, in one round trip.

Retrieval SQL lives here once: the benchmarks (bench/retrieval.py, bench/answer_quality.py) import it.
Every search reads only `live` rows of one tenant, and compares only vectors of the configured
`EMBEDDINGS_MODEL`.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, Protocol, cast

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Q
from django.utils.module_loading import import_string

from apps.accounts.models import Tenant
from apps.core.errors import TemporarilyUnavailable
from apps.guardrails.pii import RedactedText
from apps.knowledge.models import Chunk
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

# The query's words ORed, so a question matches passages sharing any of its meaningful words.
_TSQUERY_SQL = (
    "SELECT coalesce(string_agg(quote_literal(lexeme), ' | '), '') "
    "FROM unnest(tsvector_to_array(to_tsvector('english', %s))) AS lexeme"
)

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


def _result_sets(sql: str, params: dict[str, Any]) -> list[list[tuple[Any, ...]]]:
    """The rows of every statement in `sql` that returns rows, sent as one message (one round trip).

    Django's cursor binds on the client, so the string goes as one simple-protocol message, which
    PostgreSQL runs as one implicit transaction: `SET LOCAL`s at its start hold for the queries after
    them and end with the message, instead of BEGIN, the SETs, the queries and COMMIT in turn.
    """
    results: list[list[tuple[Any, ...]]] = []
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        while True:
            if cursor.description is not None:
                results.append(cursor.fetchall())
            if not cursor.nextset():
                return results


def _passage_params(
    *, tenant: Tenant, query: RedactedText, vector: list[float], model: str, k: int
) -> dict[str, Any]:
    return {"q": str(vector), "text": str(query), "tenant": tenant.id, "model": model, "k": k, "rrf": RRF_K}


def _vector_sql(tenant: Tenant, model: str) -> str:
    return _VECTOR_AND_STALE_SQL if _has_stale_passages(tenant, model) else _VECTOR_SQL


def _vector_rows(
    *, tenant: Tenant, query: RedactedText, vector: list[float], model: str, k: int
) -> list[tuple[Any, ...]]:
    params = _passage_params(tenant=tenant, query=query, vector=vector, model=model, k=k)
    [rows] = _result_sets(f"{_HNSW_SETTINGS}; {_vector_sql(tenant, model)}", params)
    return rows


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


def _retrieval(rows: list[tuple[Any, ...]], *, mode: Mode, threshold: float, model: str) -> Retrieval:
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
    answerable = bool(passages) if mode == "fulltext" else top is not None and top >= threshold
    return Retrieval(
        passages=passages,
        top_similarity=top,
        answerable=answerable,
        threshold=threshold,
        mode=mode,
        model=model,
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
    return _retrieval(rows, mode=mode, threshold=limit, model=model)


# ---- sentence units ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SentenceHit:
    sentence_id: uuid.UUID
    chunk_id: uuid.UUID
    document_id: uuid.UUID
    document_title: str
    version_id: uuid.UUID
    version_number: int
    effective_date: datetime.date | None
    section_path: list[str]
    page: int | None
    ordinal: int
    text: str
    similarity: float  # cosine similarity to the query vector, also for full-text hits (0 for neighbours)
    text_rank: float | None  # ts_rank_cd of the full-text match; None when full text did not find it
    # Cosine similarity of the query to the passage (chunk) holding the sentence: a sentence inside a
    # passage that answers the question is likelier the answer than a lone lookalike. 0 for neighbours.
    passage_similarity: float = 0.0


# The n_vector nearest live sentences of the configured model and the n_text best full-text matches (any
# of the query's words), each once, with every hit's cosine similarity: a full-text hit's is computed from
# its stored vector. Sentences not yet embedded with the configured model (re-embedding under way) are
# left out of both branches, so a similarity is never compared across models. Title, version number and
# date come from scalar subqueries, as in _VECTOR_SQL.
_SENTENCE_SQL = """
WITH vec AS (
    SELECT id, embedding <=> %(q)s::vector AS distance
    FROM knowledge_sentence
    WHERE tenant_id = %(tenant)s AND live AND embedding_model = %(model)s
    ORDER BY distance
    LIMIT %(n_vector)s
),
fts AS (
    SELECT s.id, ts_rank_cd(s.search_vector, query) AS rank
    FROM knowledge_sentence s,
         to_tsquery('english', nullif((
             SELECT string_agg(quote_literal(lexeme), ' | ')
             FROM unnest(tsvector_to_array(to_tsvector('english', %(text)s))) AS lexeme
         ), '')) AS query
    WHERE s.tenant_id = %(tenant)s AND s.live AND s.embedding_model = %(model)s AND s.search_vector @@ query
    ORDER BY rank DESC, s.id
    LIMIT %(n_text)s
),
hits AS (
    SELECT coalesce(vec.id, fts.id) AS id, vec.distance, fts.rank
    FROM vec FULL OUTER JOIN fts ON vec.id = fts.id
)
SELECT s.id, s.chunk_id, s.document_id, (SELECT title FROM knowledge_document WHERE id = s.document_id),
       s.version_id, (SELECT number FROM knowledge_documentversion WHERE id = s.version_id),
       (SELECT effective_date FROM knowledge_documentversion WHERE id = s.version_id),
       s.section_path, s.page, s.ordinal, s.text,
       1 - coalesce(hits.distance, s.embedding <=> %(q)s::vector) AS similarity, hits.rank,
       coalesce((SELECT 1 - (c.embedding <=> %(q)s::vector) FROM knowledge_chunk c
                 WHERE c.id = s.chunk_id AND c.embedding_model = %(model)s), 0) AS passage_similarity
FROM hits
JOIN knowledge_sentence s ON s.id = hits.id
ORDER BY similarity DESC, s.id
"""

# For each anchor sentence of the tenant, the sentences up to `before` ordinals before it and `after` after
# it in the same version and the same section (a run of chunks with one section path).
_NEIGHBOURS_SQL = """
SELECT a.id, a.ordinal, s.id, s.chunk_id, s.document_id,
       (SELECT title FROM knowledge_document WHERE id = s.document_id),
       s.version_id, (SELECT number FROM knowledge_documentversion WHERE id = s.version_id),
       (SELECT effective_date FROM knowledge_documentversion WHERE id = s.version_id),
       s.section_path, s.page, s.ordinal, s.text, 0.0, NULL, 0.0
FROM knowledge_sentence a
JOIN knowledge_sentence s
  ON s.version_id = a.version_id
 AND s.section_ordinal = a.section_ordinal
 AND s.section_path = a.section_path
 AND s.ordinal BETWEEN a.ordinal - %(before)s AND a.ordinal + %(after)s
 AND s.ordinal <> a.ordinal
WHERE a.tenant_id = %(tenant)s AND s.tenant_id = %(tenant)s AND a.id = ANY(%(ids)s::uuid[])
ORDER BY a.id, s.ordinal
"""


def _sentence_params(
    *, tenant: Tenant, query: RedactedText, vector: list[float], model: str, n_vector: int, n_text: int
) -> dict[str, Any]:
    return {
        "q": str(vector),
        "text": str(query),
        "tenant": tenant.id,
        "model": model,
        "n_vector": max(0, n_vector),
        "n_text": max(0, n_text),
    }


def _hit(r: tuple[Any, ...]) -> SentenceHit:
    return SentenceHit(
        sentence_id=r[0],
        chunk_id=r[1],
        document_id=r[2],
        document_title=r[3],
        version_id=r[4],
        version_number=r[5],
        effective_date=r[6],
        section_path=list(r[7] or []),
        page=r[8],
        ordinal=r[9],
        text=r[10],
        similarity=float(r[11]),
        text_rank=None if r[12] is None else float(r[12]),
        passage_similarity=float(r[13] or 0.0) if len(r) > 13 else 0.0,
    )


def sentence_candidates(
    *, tenant: Tenant, query: RedactedText, vector: list[float], n_vector: int = 40, n_text: int = 20
) -> list[SentenceHit]:
    """Live sentence units of the tenant near `vector` or sharing a word with `query`, best similarity
    first, each once (one statement, one round trip). Raises RetrievalUnavailable if the index cannot be
    read."""
    params = _sentence_params(
        tenant=tenant,
        query=query,
        vector=vector,
        model=settings.EMBEDDINGS_MODEL,
        n_vector=n_vector,
        n_text=n_text,
    )
    try:
        [rows] = _result_sets(f"{_HNSW_SETTINGS}; {_SENTENCE_SQL}", params)
    except DatabaseError as exc:
        logger.warning("sentence search failed: %s", exc.__class__.__name__)
        raise RetrievalUnavailable() from exc
    return [_hit(r) for r in rows]


def sentence_neighbours(
    *, tenant: Tenant, sentence_ids: list[uuid.UUID], before: int = 1, after: int = 1
) -> dict[uuid.UUID, tuple[list[SentenceHit], list[SentenceHit]]]:
    """For each of `sentence_ids`: up to `before` sentences just before it and `after` just after it, in
    document order, from the same version and section (one query for all). Ids of no sentence of the
    tenant get two empty lists. Neighbours carry similarity 0 and no text rank."""
    found: dict[uuid.UUID, tuple[list[SentenceHit], list[SentenceHit]]] = {i: ([], []) for i in sentence_ids}
    if not sentence_ids or (before <= 0 and after <= 0):
        return found
    params = {
        "tenant": tenant.id,
        "ids": [str(i) for i in sentence_ids],
        "before": max(0, before),
        "after": max(0, after),
    }
    try:
        [rows] = _result_sets(_NEIGHBOURS_SQL, params)
    except DatabaseError as exc:
        logger.warning("sentence neighbours failed: %s", exc.__class__.__name__)
        raise RetrievalUnavailable() from exc
    for row in rows:
        anchor, anchor_ordinal, hit = row[0], row[1], _hit(row[2:])
        preceding, following = found.setdefault(anchor, ([], []))
        (preceding if hit.ordinal < anchor_ordinal else following).append(hit)
    return found


# ---- the assistant's retriever -----------------------------------------------------------------------


@dataclass(frozen=True)
class Pool:
    retrieval: Retrieval  # the passages, as knowledge_search returns them (k passages, threshold, answerable)
    sentences: list[SentenceHit]  # sentence_candidates for the same vector


class Retriever(Protocol):
    def retrieve(
        self, *, tenant: Tenant, query: RedactedText, vector: list[float], k: int, threshold: float | None
    ) -> Pool: ...


@dataclass(frozen=True)
class VectorRetriever:
    """The default: knowledge_search's vector mode and sentence_candidates for the same vector, sent as one
    message (one round trip)."""

    n_vector: int = 40
    n_text: int = 20

    def retrieve(
        self, *, tenant: Tenant, query: RedactedText, vector: list[float], k: int, threshold: float | None
    ) -> Pool:
        model = settings.EMBEDDINGS_MODEL
        limit = settings.KB_ABSTAIN_SIMILARITY if threshold is None else threshold
        params = {
            **_passage_params(tenant=tenant, query=query, vector=vector, model=model, k=k),
            **_sentence_params(
                tenant=tenant,
                query=query,
                vector=vector,
                model=model,
                n_vector=self.n_vector,
                n_text=self.n_text,
            ),
        }
        try:
            sql = f"{_HNSW_SETTINGS}; {_vector_sql(tenant, model)}; {_SENTENCE_SQL}"
            passages, sentences = _result_sets(sql, params)
        except DatabaseError as exc:
            logger.warning("knowledge retrieval failed: %s", exc.__class__.__name__)
            raise RetrievalUnavailable() from exc
        return Pool(
            retrieval=_retrieval(passages, mode="vector", threshold=limit, model=model),
            sentences=[_hit(r) for r in sentences],
        )


@lru_cache(maxsize=4)
def _retriever(path: str) -> Retriever:
    return cast(Retriever, import_string(path)())


def retriever() -> Retriever:
    """The retriever `ASSISTANT_RETRIEVER` names (a dotted path to a class or factory taking no
    arguments), made once per process."""
    return _retriever(settings.ASSISTANT_RETRIEVER)
