"""Retrieval latency at 100k chunks against its floor, and HNSW recall against an exact scan.

    .venv/bin/python bench/retrieval.py [--chunks 100000] [--queries 200] [--smoke]

Builds one tenant with `--chunks` live chunks and a second tenant with 10% more (so the tenant filter
has something to filter), at the column's 384 dimensions, on its own embedded PostgreSQL+pgvector.

Data. Chunk text is sampled from the policy corpus (apps/demo/data/policies/), so full-text search meets
realistic words and match counts. Embedding 100k texts on 2 cores would take most of an hour, so only
`--base` distinct sentence windows of up to chunk size (about 2,000) are embedded for real, as ingestion
embeds them (title and headings first). A chunk's vector is a random blend of three windows' vectors
(Dirichlet(1, 1, 1) weights) plus small Gaussian noise, renormalised; its text is the heaviest window plus
the first sentence of each other. The vectors stay in the span of real embeddings of this corpus, and
every chunk is distinct. How the vectors are derived decides HNSW recall (docs/adr/0003 has the table:
one source window per chunk gives tight clumps of near-duplicates whose graph is poorly connected, and
recall@10 0.80 at ef_search 80; pure noise around a window gives 0.64); this blend is the one whose
similarity between a question and its nearest chunk matches real embeddings (reported as
`query_top1_cosine`: real windows vs synthetic chunks).

Rows go in with a streamed binary COPY; full-text vectors are then computed by ingestion's own
`refresh_search_vectors`; the HNSW and GIN indexes are dropped before the load and recreated after it
from the definitions the migration created, then ANALYZE.

Queries. Real embeddings of the (held-out) questions of bench/data/questions.jsonl after `pii_redact`,
cycled and perturbed by small noise once every question has been used. Query embedding time is excluded:
`knowledge_search` is given the vector (`query_vector=`), so "ours" is SQL plus its Python wrapper.

Measured in the same run, interleaved in a random order per query after a warm-up, per CONTRACTS §4,
in two loops: hybrid against the floor, then everything else (hybrid evicts the index from
shared_buffers, which would otherwise be charged to whichever variant ran next):
  vector      knowledge_search(mode="vector")       THE shipped path (the assistant's; the headline ratio)
  hybrid      knowledge_search(mode="hybrid")       vector + full text fused (RRF), kept for comparison
  raw         SELECT id ... ORDER BY embedding <=> q LIMIT 10            the floor, same index
  raw_tenant  the floor with our WHERE (tenant, live, model)
  raw_passages  raw_tenant returning the chunk's columns instead of its id (the price of the text)
  proposed*   the statements docs/adr/0003 proposed, now shipped as `vector` (imported from
              apps/knowledge/retrieval.py, never copied), run several ways (see `proposed_variants`) to
              show what each choice costs; the ef_search sweep uses them because the shipped function
              pins its own ef_search
  small_ours / small_raw   proposed_vec_local and raw_tenant on the second, smaller tenant
with the HNSW session settings of apps/knowledge/retrieval.py. Recall@10 is measured against an
exact scan with the same tenant filter; an ef_search sweep and EXPLAIN ANALYZE of each statement follow.
`--smoke`: 3,000 chunks, 20 queries.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.answer_quality import POLICIES, QUESTIONS, embedded_django, policy_title  # noqa: E402

DIMS = 384
K = 10
NOISE_SIGMA = 0.02  # per dimension
BLEND = 3  # windows blended into each chunk's vector, with Dirichlet(1, ..., 1) weights
EF_SWEEP = (40, 80, 160, 320)  # hnsw.ef_search values tried on the proposed statement
QUERY_SIGMA = 0.01  # per dimension, for queries that repeat a question
SECOND_TENANT_SHARE = 0.10
COPY_BATCH = 2000
EXPLAIN_QUERIES = 10
SEED = 20261123

RAW_SQL = "SELECT id FROM knowledge_chunk ORDER BY embedding <=> %s::vector LIMIT %s"
RAW_TENANT_SQL = (
    "SELECT id FROM knowledge_chunk WHERE tenant_id = %s AND live AND embedding_model = %s "
    "ORDER BY embedding <=> %s::vector LIMIT %s"
)
# The floor for returning passages rather than ids: the same index scan with the columns a Passage needs
# from the chunk itself (no joins), so the gap between it and `raw` is the price of shipping the text.
RAW_PASSAGES_SQL = (
    "SELECT id, document_id, version_id, section_path, page, text, embedding <=> %s::vector AS distance "
    "FROM knowledge_chunk WHERE tenant_id = %s AND live AND embedding_model = %s ORDER BY distance LIMIT %s"
)
# OFFSET 0 keeps the planner from flattening the subquery, so the ORDER BY cannot be served by the HNSW
# index; enable_indexscan = off on top makes the exact scan's plan independent of cost estimates.
EXACT_SQL = (
    "SELECT id FROM (SELECT id, embedding <=> %s::vector AS distance FROM knowledge_chunk "
    "WHERE tenant_id = %s AND live AND embedding_model = %s OFFSET 0) candidates ORDER BY distance LIMIT %s"
)
EXACT_ALL_SQL = (
    "SELECT id FROM (SELECT id, embedding <=> %s::vector AS distance FROM knowledge_chunk OFFSET 0) c "
    "ORDER BY distance LIMIT %s"
)


# ---- the synthetic knowledge base ------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    filename: str
    title: str
    section_path: tuple[str, ...]
    text: str


def _sentences(path: Path) -> list[tuple[tuple[str, ...], str]]:
    """(heading path, sentence) in reading order; list items count as sentences."""
    headings: list[str] = []
    found: list[tuple[tuple[str, ...], str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^(#+)\s+(.*)$", line)
        if heading:
            depth = len(heading.group(1))
            headings = [*headings[: depth - 1], heading.group(2).strip()]
            continue
        body = line.strip().removeprefix("- ")
        for sentence in re.split(r"(?<=[.!?;])\s+(?=[A-Z])", body):
            if sentence:
                found.append((tuple(headings), sentence))
    return found


def corpus_windows(count: int, words_per_chunk: int, rng: np.random.Generator) -> list[Window]:
    """`count` distinct sentence windows of up to chunk size (all there are, if fewer)."""
    windows: list[Window] = []
    # Four window lengths give ~2,000 distinct windows from this corpus; chunks vary in length too.
    sizes = tuple(int(words_per_chunk * f) for f in (0.3, 0.5, 0.7, 1.0))
    for path in sorted(POLICIES.glob("*.md")):
        title = policy_title(path)
        sentences = _sentences(path)
        for start in range(len(sentences)):
            for size in sizes:
                words, end = 0, start
                while end < len(sentences) and words < size:
                    words += len(sentences[end][1].split())
                    end += 1
                text = " ".join(s for _, s in sentences[start:end])
                windows.append(Window(path.name, title, sentences[start][0], text))
    unique = list({w.text: w for w in windows}.values())
    chosen = rng.choice(len(unique), size=min(count, len(unique)), replace=False)
    return [unique[i] for i in sorted(chosen)]


def _first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s+", text, maxsplit=1)[0]


def _normalised(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _documents(tenant: Any, windows: list[Window], model: str) -> dict[str, tuple[uuid.UUID, uuid.UUID]]:
    """One published document per policy file: {filename: (document id, version id)}."""
    from django.utils import timezone

    from apps.knowledge.models import Document, DocumentVersion, VersionStatus

    made: dict[str, tuple[uuid.UUID, uuid.UUID]] = {}
    for filename, title in sorted({(w.filename, w.title) for w in windows}):
        document = Document.objects.create(tenant=tenant, title=title)
        version = DocumentVersion.objects.create(
            tenant=tenant,
            document=document,
            number=1,
            status=VersionStatus.READY,
            progress=100,
            filename=filename,
            kind="markdown",
            size_bytes=0,
            sha256="0" * 64,
            content=b"",
            embedding_model=model,
            published_at=timezone.now(),
        )
        document.published_version = version
        document.save(update_fields=["published_version", "updated_at"])
        made[filename] = (document.id, version.id)
    return made


def _copy_chunks(
    conn: Any,
    *,
    tenant_id: uuid.UUID,
    count: int,
    windows: list[Window],
    base: np.ndarray,
    documents: dict[str, tuple[uuid.UUID, uuid.UUID]],
    model: str,
    queries: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Streams `count` chunks into knowledge_chunk; returns each query's best cosine to any of them."""
    from apps.knowledge.parsing import estimate_tokens

    now = datetime.datetime.now(datetime.UTC)
    ordinals: dict[uuid.UUID, int] = {}
    best = np.full(len(queries), -1.0, dtype=np.float32)
    columns = (
        "id, created_at, updated_at, tenant_id, document_id, version_id, ordinal, text, section_path, page, "
        "token_estimate, live, embedding, embedding_model"
    )
    with (
        conn.cursor() as cursor,
        cursor.copy(f"COPY knowledge_chunk ({columns}) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types(
            [
                "uuid",
                "timestamptz",
                "timestamptz",
                "uuid",
                "uuid",
                "uuid",
                "int4",
                "text",
                "varchar[]",
                "int4",
                "int4",
                "bool",
                "vector",
                "varchar",
            ]
        )
        for start in range(0, count, COPY_BATCH):
            size = min(COPY_BATCH, count - start)
            picks = rng.integers(len(windows), size=(size, BLEND))
            weights = rng.dirichlet(np.ones(BLEND), size=size).astype(np.float32)
            noise = rng.normal(0.0, NOISE_SIGMA, (size, DIMS)).astype(np.float32)
            vectors = _normalised(np.einsum("nb,nbd->nd", weights, base[picks]) + noise)
            best = np.maximum(best, (queries @ vectors.T).max(axis=1))
            for pick, weight, vector in zip(picks, weights, vectors, strict=True):
                order = pick[np.argsort(-weight)]
                window = windows[order[0]]
                document_id, version_id = documents[window.filename]
                text = " ".join([window.text, *(_first_sentence(windows[i].text) for i in order[1:])])
                ordinal = ordinals.get(version_id, 0)
                ordinals[version_id] = ordinal + 1
                copy.write_row(
                    (
                        uuid.uuid4(),
                        now,
                        now,
                        tenant_id,
                        document_id,
                        version_id,
                        ordinal,
                        text,
                        list(window.section_path),
                        None,
                        estimate_tokens(text),
                        True,
                        vector,
                        model,
                    )
                )
    return best


def build(*, chunks: int, base_count: int, queries: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
    """The two tenants' chunks, indexes rebuilt after the load. Returns timings and data figures."""
    import psycopg
    from django.conf import settings
    from pgvector.psycopg import register_vector

    from apps.accounts.services import tenant_create
    from apps.guardrails.pii import RedactedText
    from apps.knowledge.ingestion import embedding_input, refresh_search_vectors
    from apps.knowledge.models import DocumentVersion
    from apps.knowledge.parsing import chunk as chunk_function
    from apps.llm.embeddings import embedder

    model = settings.EMBEDDINGS_MODEL
    target_tokens = int(chunk_function.__kwdefaults__["target_tokens"])  # type: ignore[index]
    words_per_chunk = target_tokens * 10 // 13  # the chunker's own tokens-per-word estimate
    windows = corpus_windows(base_count, words_per_chunk, rng)

    started = time.perf_counter()
    inputs = [embedding_input(w.title, w.section_path, RedactedText.trusted(w.text)) for w in windows]
    base = np.asarray(embedder().embed(list(inputs)), dtype=np.float32)
    embed_s = time.perf_counter() - started

    main = tenant_create(slug="bench-main", name="Main tenant")
    other = tenant_create(slug="bench-other", name="Other tenant")
    plan = [(main, chunks), (other, max(1, int(chunks * SECOND_TENANT_SHARE)))]

    timings: dict[str, float] = {"embed_base_s": embed_s}
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        register_vector(conn)
        indexes: dict[str, str] = dict(
            conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'knowledge_chunk' "
                "AND indexname IN ('chunk_embedding_hnsw', 'chunk_search_gin')"
            ).fetchall()
        )
        for name in indexes:
            conn.execute(f"DROP INDEX {name}")
        started = time.perf_counter()
        top1: dict[str, np.ndarray] = {}
        for tenant, count in plan:
            documents = _documents(tenant, windows, model)
            top1[tenant.slug] = _copy_chunks(
                conn,
                tenant_id=tenant.id,
                count=count,
                windows=windows,
                base=base,
                documents=documents,
                model=model,
                queries=queries,
                rng=rng,
            )
        timings["copy_s"] = time.perf_counter() - started

        # Ingestion's own statement, so the full-text vectors are exactly the product's.
        started = time.perf_counter()
        for version in DocumentVersion.objects.filter(tenant__in=[main, other]):
            refresh_search_vectors(version)
        timings["search_vectors_s"] = time.perf_counter() - started
        started = time.perf_counter()
        conn.execute("VACUUM FULL knowledge_chunk")  # the UPDATE above left a dead copy of every row
        timings["vacuum_full_s"] = time.perf_counter() - started

        # A bulk HNSW build wants the graph in memory; 2 cores: the leader and one worker.
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("SET max_parallel_maintenance_workers = 1")
        for name in ("chunk_embedding_hnsw", "chunk_search_gin"):
            started = time.perf_counter()
            conn.execute(indexes[name])
            timings[f"build_{name}_s"] = time.perf_counter() - started
        conn.execute("ANALYZE knowledge_chunk")
        conn.execute("ANALYZE knowledge_document")
        conn.execute("ANALYZE knowledge_documentversion")
        index_bytes, table_bytes = conn.execute(
            "SELECT pg_relation_size('chunk_embedding_hnsw'), pg_total_relation_size('knowledge_chunk')"
        ).fetchone() or (0, 0)
    return {
        "main": main,
        "other": other,
        "model": model,
        "windows": len(windows),
        "words_per_chunk": words_per_chunk,
        "tenant_chunks": {"main": plan[0][1], "other": plan[1][1]},
        "query_top1_cosine": {
            "real_windows": round(float((queries @ base.T).max(axis=1).mean()), 3),
            "synthetic_chunks": round(float(top1[main.slug].mean()), 3),
        },
        "hnsw_index": indexes["chunk_embedding_hnsw"],
        "hnsw_mib": round(index_bytes / 2**20, 1),
        "table_mib": round(table_bytes / 2**20, 1),
        "timings": {k: round(v, 2) for k, v in timings.items()},
    }


# ---- measuring -------------------------------------------------------------------------------------


def selector_session_settings() -> dict[str, str]:
    """The HNSW settings knowledge_search applies, read from its statement so the floor uses the same."""
    from apps.knowledge.retrieval import _HNSW_SETTINGS

    found = dict(re.findall(r"SET LOCAL (hnsw\.\w+) = '?(\w+)'?", _HNSW_SETTINGS))
    if "hnsw.ef_search" not in found:
        raise SystemExit("could not read hnsw.ef_search from apps/knowledge/retrieval.py")
    return found


def query_set(count: int, rng: np.random.Generator) -> list[tuple[Any, list[float]]]:
    """(redacted question, vector) pairs; questions repeat with a perturbed vector once all are used."""
    from apps.guardrails.pii import pii_redact
    from apps.llm.embeddings import embedder

    rows = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    redacted = [pii_redact(row["question"]) for row in rows]
    vectors = np.asarray(embedder().embed([str(r) for r in redacted]), dtype=np.float32)
    queries = []
    for i in range(count):
        vector = vectors[i % len(rows)]
        if i >= len(rows):
            vector = _normalised((vector + rng.normal(0.0, QUERY_SIGMA, DIMS).astype(np.float32))[None, :])[0]
        queries.append((redacted[i % len(rows)], [float(x) for x in vector]))
    return queries


def _fetch_ids(sql: str, params: list[Any]) -> list[Any]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


def variants(tenant: Any, model: str) -> dict[str, Callable[[Any, list[float]], list[Any]]]:
    from apps.knowledge.retrieval import knowledge_search

    def ours(mode: str) -> Callable[[Any, list[float]], list[Any]]:
        def run(query: Any, vector: list[float]) -> list[Any]:
            result = knowledge_search(tenant=tenant, query=query, k=K, mode=mode, query_vector=vector)  # type: ignore[arg-type]
            return [p.chunk_id for p in result.passages]

        return run

    # The floors get the vector as the same text literal knowledge_search sends (str of a list).
    return {
        "hybrid": ours("hybrid"),
        "vector": ours("vector"),
        "raw": lambda query, vector: _fetch_ids(RAW_SQL, [str(vector), K]),
        "raw_tenant": lambda query, vector: _fetch_ids(RAW_TENANT_SQL, [tenant.id, model, str(vector), K]),
        "raw_passages": lambda query, vector: _fetch_ids(
            RAW_PASSAGES_SQL, [str(vector), tenant.id, model, K]
        ),
    }


def exact(tenant: Any, model: str, vector: list[float], *, tenant_filter: bool) -> list[Any]:
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_indexscan = off")
        if tenant_filter:
            cursor.execute(EXACT_SQL, [str(vector), tenant.id, model, K])
        else:
            cursor.execute(EXACT_ALL_SQL, [str(vector), K])
        return [row[0] for row in cursor.fetchall()]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def measure(
    runs: dict[str, Callable[[Any, list[float]], list[Any]]],
    queries: list[tuple[Any, list[float]]],
    warmup: int,
    rng: np.random.Generator,
) -> tuple[dict[str, list[float]], dict[str, list[list[Any]]]]:
    names = list(runs)
    for query, vector in queries[:warmup]:
        for name in names:
            runs[name](query, vector)
    millis: dict[str, list[float]] = {name: [] for name in names}
    results: dict[str, list[list[Any]]] = {name: [] for name in names}
    for query, vector in queries:
        # A B A B: every variant runs for the same query back to back, in a fresh random order each time.
        # A rotating order would keep the same neighbours, and whatever always follows a variant that
        # evicts the index from shared_buffers would always pay for reloading it.
        for name in rng.permutation(names):
            started = time.perf_counter_ns()
            ids = runs[name](query, vector)
            millis[name].append((time.perf_counter_ns() - started) / 1e6)
            results[name].append(ids)
    return millis, results


def recall(found: list[list[Any]], truth: list[list[Any]]) -> dict[str, float]:
    per_query = [len(set(f) & set(t)) / max(1, len(t)) for f, t in zip(found, truth, strict=True)]
    return {"mean": round(statistics.fmean(per_query), 4), "worst_5pct": round(percentile(per_query, 5), 4)}


# ---- where the time goes -----------------------------------------------------------------------------


def _plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node.get("Plans", []) for n in _plan_nodes(child))]


def explain_pieces(tenant: Any, model: str, queries: list[tuple[Any, list[float]]]) -> dict[str, Any]:
    """EXPLAIN ANALYZE of knowledge_search's statements and the floors, under knowledge_search's settings."""
    from django.db import connection, transaction

    from apps.knowledge.retrieval import _SQL, _TSQUERY_SQL, CANDIDATES, RRF_K
    from apps.knowledge.retrieval import _VECTOR_AND_STALE_SQL as PROPOSED_SQL
    from apps.knowledge.retrieval import _VECTOR_SQL as PROPOSED_VECTOR_SQL

    pieces: dict[str, list[float]] = {
        "tsquery": [],
        "raw": [],
        "raw_tenant": [],
        "raw_passages": [],
        "vector_only": [],
        "proposed": [],
        "proposed_vec": [],
        "hybrid": [],
        "fulltext_only": [],
    }
    planning: dict[str, list[float]] = {name: [] for name in pieces}
    matches: list[int] = []
    uses_hnsw: dict[str, bool] = {}

    def explain(cursor: Any, name: str, sql: str, params: Any) -> None:
        cursor.execute(sql, params)  # a warm run first: the figures compare work, not cache misses
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0][0]
        pieces[name].append(plan["Execution Time"])
        planning[name].append(plan["Planning Time"])
        uses_hnsw[name] = uses_hnsw.get(name, False) or any(
            n.get("Index Name") == "chunk_embedding_hnsw" for n in _plan_nodes(plan["Plan"])
        )

    for query, vector in queries[:EXPLAIN_QUERIES]:
        with transaction.atomic(), connection.cursor() as cursor:
            for setting, value in selector_session_settings().items():
                cursor.execute(f"SET LOCAL {setting} = '{value}'")
            explain(cursor, "tsquery", _TSQUERY_SQL, [str(query)])
            cursor.execute(_TSQUERY_SQL, [str(query)])
            tsquery = cursor.fetchone()[0] or "''"
            cursor.execute(
                "SELECT count(*) FROM knowledge_chunk WHERE tenant_id = %s AND live "
                "AND search_vector @@ to_tsquery('english', %s)",
                [tenant.id, tsquery],
            )
            matches.append(cursor.fetchone()[0])
            params = {
                "q": str(vector),
                "use_vec": True,
                "use_fts": True,
                "tsq": tsquery,
                "tenant": tenant.id,
                "model": model,
                "n": max(CANDIDATES, K),
                "rrf": RRF_K,
                "k": K,
            }
            # The statements that read half the table go last, so they cannot evict the index pages
            # the others need before those are measured.
            explain(cursor, "raw", RAW_SQL, [str(vector), K])
            explain(cursor, "raw_tenant", RAW_TENANT_SQL, [tenant.id, model, str(vector), K])
            explain(cursor, "raw_passages", RAW_PASSAGES_SQL, [str(vector), tenant.id, model, K])
            explain(cursor, "vector_only", _SQL, {**params, "use_fts": False})
            explain(cursor, "proposed", PROPOSED_SQL, proposed_params(tenant, model, query, vector))
            explain(
                cursor, "proposed_vec", PROPOSED_VECTOR_SQL, proposed_params(tenant, model, query, vector)
            )
            explain(cursor, "hybrid", _SQL, params)
            explain(cursor, "fulltext_only", _SQL, {**params, "use_vec": False})
    return {
        "execution_ms_mean": {k: round(statistics.fmean(v), 3) for k, v in pieces.items()},
        "planning_ms_mean": {k: round(statistics.fmean(v), 3) for k, v in planning.items()},
        "fulltext_matches_mean": round(statistics.fmean(matches)),
        "fulltext_matches_max": max(matches),
        "uses_hnsw": uses_hnsw,
    }


# ---- the proposed retrieval statements (docs/adr/0003), now shipped -------------------------------------

# PROPOSED_SQL is apps.knowledge.retrieval._VECTOR_AND_STALE_SQL: one statement instead of four, the
# tsquery built inside it, full text ranking only the passages the vector side cannot see (their vector is
# of another model while chunks_reembed catches up), document and version fields from scalar subqueries.
# PROPOSED_VECTOR_SQL is _VECTOR_SQL, the same without the stale branch (the common case); its scalar
# subqueries halved planning time (0.24 to 0.10 ms per query, a third of the gap to the floor). Both are
# imported where they run, after Django is set up: retrieval SQL lives once.


def proposed_params(tenant: Any, model: str, query: Any, vector: list[float]) -> dict[str, Any]:
    from apps.knowledge.retrieval import RRF_K

    return {"q": str(vector), "text": str(query), "tenant": tenant.id, "model": model, "k": K, "rrf": RRF_K}


def proposed_variants(tenant: Any, model: str) -> dict[str, Callable[[Any, list[float]], list[Any]]]:
    """The proposed statements run several ways, each building the same Passage objects knowledge_search does:

    proposed      HNSW settings per connection (as DATABASES OPTIONS would set them), one round trip
    proposed_txn  today's transaction with both SET LOCALs sent as one statement: two round trips more
    proposed_prep as `proposed`, prepared on the server (psycopg prepare=True); PostgreSQL still plans
                  each execution while it judges custom plans cheaper than a generic one
    proposed_vec  PROPOSED_VECTOR_SQL, one round trip: no full-text branch at all
    proposed_vec_local  PROPOSED_VECTOR_SQL after both SET LOCALs in the same query string: one round trip
                  with today's transaction-scoped settings (no connection option, so poolers are no issue)
    """
    import psycopg
    from django.db import connection, transaction

    from apps.knowledge.retrieval import _VECTOR_AND_STALE_SQL as PROPOSED_SQL
    from apps.knowledge.retrieval import _VECTOR_SQL as PROPOSED_VECTOR_SQL
    from apps.knowledge.retrieval import Passage

    set_locals = "; ".join(f"SET LOCAL {k} = '{v}'" for k, v in selector_session_settings().items())

    def passages(rows: list[Any]) -> list[Any]:
        found = [
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
        return [p.chunk_id for p in found]

    def one_statement(query: Any, vector: list[float], sql: str = PROPOSED_SQL) -> list[Any]:
        with connection.cursor() as cursor:
            cursor.execute(sql, proposed_params(tenant, model, query, vector))
            return passages(cursor.fetchall())

    def vector_statement(query: Any, vector: list[float]) -> list[Any]:
        return one_statement(query, vector, PROPOSED_VECTOR_SQL)

    def vector_statement_local(query: Any, vector: list[float]) -> list[Any]:
        with connection.cursor() as cursor:
            # Django's cursor binds on the client, so this goes as one simple-protocol message, which
            # PostgreSQL runs as one implicit transaction: SET LOCAL holds for the query and ends with it.
            cursor.execute(
                f"{set_locals}; {PROPOSED_VECTOR_SQL}", proposed_params(tenant, model, query, vector)
            )
            while cursor.description is None and cursor.nextset():
                pass  # skip the SETs' empty results
            return passages(cursor.fetchall())

    def in_transaction(query: Any, vector: list[float]) -> list[Any]:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(set_locals)
            cursor.execute(PROPOSED_SQL, proposed_params(tenant, model, query, vector))
            return passages(cursor.fetchall())

    def prepared(query: Any, vector: list[float]) -> list[Any]:
        connection.ensure_connection()
        # Django's cursors bind on the client, which rules out server-side prepared statements.
        with psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(PROPOSED_SQL, proposed_params(tenant, model, query, vector), prepare=True)
            return passages(cursor.fetchall())

    return {
        "proposed": one_statement,
        "proposed_txn": in_transaction,
        "proposed_prep": prepared,
        "proposed_vec": vector_statement,
        "proposed_vec_local": vector_statement_local,
    }


def ef_search_sweep(
    run: Callable[[Any, list[float]], list[Any]],
    queries: list[tuple[Any, list[float]]],
    truth: list[list[Any]],
) -> dict[int, dict[str, float]]:
    """Recall and latency of `run` at each hnsw.ef_search of EF_SWEEP (the values interleaved per query)."""
    from django.db import connection

    millis: dict[int, list[float]] = {ef: [] for ef in EF_SWEEP}
    found: dict[int, list[list[Any]]] = {ef: [] for ef in EF_SWEEP}
    with connection.cursor() as cursor:
        for i, (query, vector) in enumerate(queries):
            for ef in EF_SWEEP[i % len(EF_SWEEP) :] + EF_SWEEP[: i % len(EF_SWEEP)]:
                cursor.execute(f"SET hnsw.ef_search = {ef}")
                started = time.perf_counter_ns()
                found[ef].append(run(query, vector))
                millis[ef].append((time.perf_counter_ns() - started) / 1e6)
        cursor.execute(f"SET hnsw.ef_search = {selector_session_settings()['hnsw.ef_search']}")
    return {
        ef: {
            "p50_ms": round(percentile(millis[ef], 50), 3),
            "p95_ms": round(percentile(millis[ef], 95), 3),
            **recall(found[ef], truth),
        }
        for ef in EF_SWEEP
    }


# ---- main ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--chunks", type=int, default=100_000, help="live chunks in the measured tenant")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--base", type=int, default=2000, help="distinct corpus windows embedded for real")
    parser.add_argument("--smoke", action="store_true", help="3,000 chunks, 20 queries")
    args = parser.parse_args()
    if args.smoke:
        args.chunks, args.queries, args.base = 3000, 20, 100
    rng = np.random.default_rng(SEED)
    warmup = min(20, args.queries)

    with embedded_django("hdr-"):
        from django.conf import settings
        from django.db import connection

        queries = query_set(args.queries, rng)
        data = build(
            chunks=args.chunks,
            base_count=args.base,
            queries=np.asarray([v for _, v in queries], dtype=np.float32),
            rng=rng,
        )
        tenant, model = data["main"], data["model"]
        session = selector_session_settings()
        with connection.cursor() as cursor:  # the floors' session gets what knowledge_search sets locally
            for setting, value in session.items():
                cursor.execute(f"SET {setting} = '{value}'")
        small = data["other"]
        ours_and_floors = variants(tenant, model)
        # Fusion reads half the table per query and evicts the HNSW pages from shared_buffers, which would
        # charge its neighbours for reloading them: it gets its own A B loop against the floor.
        fusion_runs = {"hybrid": ours_and_floors.pop("hybrid"), "raw_beside_hybrid": ours_and_floors["raw"]}
        runs = {
            **ours_and_floors,
            **proposed_variants(tenant, model),
            # The tenant with a tenth of the rows: the filter is selective, so the HNSW scan has to keep
            # going (iterative scan) or the planner prefers the btree and an exact sort.
            "small_ours": proposed_variants(small, model)["proposed_vec_local"],
            "small_raw": variants(small, model)["raw_tenant"],
        }
        fusion_millis, _ = measure(fusion_runs, queries, warmup, rng)
        millis, results = measure(runs, queries, warmup, rng)
        millis = {**fusion_millis, **millis}
        truth = [exact(tenant, model, vector, tenant_filter=True) for _, vector in queries]
        truth_all = [exact(tenant, model, vector, tenant_filter=False) for _, vector in queries]
        truth_small = [exact(small, model, vector, tenant_filter=True) for _, vector in queries]
        sweep = ef_search_sweep(runs["proposed"], queries, truth)
        pieces = explain_pieces(tenant, model, queries)
        with connection.cursor() as cursor:
            cursor.execute("SELECT version(), extversion FROM pg_extension WHERE extname = 'vector'")
            postgres_version, pgvector_version = cursor.fetchone()
            cursor.execute("SHOW shared_buffers")
            shared_buffers = cursor.fetchone()[0]

    latency = {
        name: {"p50_ms": round(percentile(v, 50), 3), "p95_ms": round(percentile(v, 95), 3)}
        for name, v in millis.items()
    }

    def ratio(ours: str, floor: str) -> dict[str, float]:
        return {
            "p50": round(latency[ours]["p50_ms"] / latency[floor]["p50_ms"], 2),
            "p95": round(latency[ours]["p95_ms"] / latency[floor]["p95_ms"], 2),
        }

    ratios = {
        "hybrid/raw": ratio("hybrid", "raw_beside_hybrid"),
        "vector/raw": ratio("vector", "raw"),
        "vector/raw_tenant": ratio("vector", "raw_tenant"),
        "proposed/raw": ratio("proposed", "raw"),
        "proposed_txn/raw": ratio("proposed_txn", "raw"),
        "proposed_prep/raw": ratio("proposed_prep", "raw"),
        "proposed_vec/raw": ratio("proposed_vec", "raw"),
        "proposed_vec_local/raw": ratio("proposed_vec_local", "raw"),
        "raw_passages/raw": ratio("raw_passages", "raw"),
        "proposed_vec_local/raw_passages": ratio("proposed_vec_local", "raw_passages"),
        "small_ours/small_raw": ratio("small_ours", "small_raw"),
    }
    recalls = {
        "vector (ours, tenant)": recall(results["vector"], truth),
        "raw_tenant (HNSW, tenant)": recall(results["raw_tenant"], truth),
        "raw (HNSW, no filter)": recall(results["raw"], truth_all),
        "proposed (tenant)": recall(results["proposed"], truth),
        "proposed_vec (tenant)": recall(results["proposed_vec"], truth),
        "proposed_vec_local (tenant)": recall(results["proposed_vec_local"], truth),
        "small_ours (small tenant)": recall(results["small_ours"], truth_small),
        "small_raw (small tenant)": recall(results["small_raw"], truth_small),
    }
    config = {
        "chunks": data["tenant_chunks"]["main"],
        "chunks_other_tenant": data["tenant_chunks"]["other"],
        "tenants": 2,
        "dims": DIMS,
        "embedding_model": model,
        "vectors": (
            f"{data['windows']} corpus windows embedded for real; chunk = normalise(Dirichlet(1)-weighted "
            f"blend of {BLEND} windows + N(0, {NOISE_SIGMA}^2) per dimension)"
        ),
        "query_top1_cosine": data["query_top1_cosine"],
        "words_per_chunk_target": data["words_per_chunk"],
        "hnsw_index": data["hnsw_index"],
        "m": 16,
        "ef_construction": 64,
        "ef_search": int(session["hnsw.ef_search"]),
        "iterative_scan": session.get("hnsw.iterative_scan", "off"),
        "build_maintenance_work_mem": "512MB",
        "shared_buffers": shared_buffers,
        "queries": args.queries,
        "warmup": warmup,
        "k": K,
        "query_vector_given": True,
        "postgres": postgres_version.split(" on ")[0],
        "pgvector": pgvector_version,
        "cpus": os.cpu_count(),
        "abstain_similarity": settings.KB_ABSTAIN_SIMILARITY,
        "hnsw_mib": data["hnsw_mib"],
        "table_mib": data["table_mib"],
        "build_timings_s": data["timings"],
        "smoke": args.smoke,
    }

    print(
        f"{config['chunks']} chunks (+{config['chunks_other_tenant']} in a second tenant), {DIMS} dims, "
        f"HNSW m=16 ef_construction=64, ef_search={config['ef_search']}, "
        f"iterative_scan={config['iterative_scan']}, {args.queries} queries, {os.cpu_count()} cpus"
    )
    print()
    print(f"{'variant':<20}{'p50 ms':>9}{'p95 ms':>9}")
    for name, figures in latency.items():
        if name == "vector":
            print("  (second loop, without hybrid)")
        print(f"{name:<20}{figures['p50_ms']:>9.2f}{figures['p95_ms']:>9.2f}")
    print()
    print(f"{'ratio':<26}{'p50':>7}{'p95':>7}")
    for name, figures in ratios.items():
        print(f"{name:<26}{figures['p50']:>7.2f}{figures['p95']:>7.2f}")
    print()
    print(f"{'recall@10 vs exact':<30}{'mean':>8}{'worst 5%':>10}")
    for name, figures in recalls.items():
        print(f"{name:<30}{figures['mean']:>8.3f}{figures['worst_5pct']:>10.3f}")
    print()
    print(f"{'ef_search (proposed)':<22}{'p50 ms':>8}{'p95 ms':>8}{'recall':>8}{'worst 5%':>10}")
    for ef, figures in sweep.items():
        print(
            f"{ef:<22}{figures['p50_ms']:>8.2f}{figures['p95_ms']:>8.2f}{figures['mean']:>8.3f}"
            f"{figures['worst_5pct']:>10.3f}"
        )
    print()
    print(f"EXPLAIN ANALYZE over {EXPLAIN_QUERIES} queries (mean ms): execution / planning")
    for name, value in pieces["execution_ms_mean"].items():
        print(f"  {name:<16}{value:>9.3f}{pieces['planning_ms_mean'][name]:>9.3f}")
    print(
        f"  full-text matches per query: mean {pieces['fulltext_matches_mean']}, "
        f"max {pieces['fulltext_matches_max']}; HNSW used: {pieces['uses_hnsw']}"
    )
    print(
        json.dumps(
            {
                "latency": latency,
                "ratios": ratios,
                "recall_at_10": recalls,
                "ef_search_sweep": sweep,
                "explain": pieces,
                "config": config,
            },
            default=str,
        )
    )


if __name__ == "__main__":
    main()
