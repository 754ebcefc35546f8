"""Sentence-unit retrieval on the demo corpus: latency against floors measured in the same run, and how
often the answer's sentence is in the candidate pool.

    .venv/bin/python bench/sentence_retrieval.py [--queries 200] [--smoke]

Starts its own PostgreSQL+pgvector and Valkey (bench/answer_quality.py's `embedded_django`), uploads and
publishes the demo company's policies (apps/demo/data/policies/) through the knowledge services, then asks
the questions of bench/data/questions.jsonl, redacted and embedded once (the vector is given, so query
embedding is not timed), cycled when `--queries` is larger. Per CONTRACTS §4 every variant runs for the
same query back to back, in a fresh random order per query, after a warm-up:

  candidates     sentence_candidates: 40 nearest + 20 full-text sentences, one statement
  passages       knowledge_search(mode="vector", k=5): the assistant's passages
  retrieve       retriever().retrieve(k=5): passages and candidates together, one round trip
  two_trips      knowledge_search, then sentence_candidates: what `retrieve` saves
  neighbours     sentence_neighbours of the two best candidates (1 before, 2 after)
  raw_sentences  the floor: the 40 nearest sentence ids under the same filter and HNSW settings
  select_1       a round trip doing nothing

Also reported: the share of answerable questions whose labelled answer phrase is inside some candidate
sentence (the pool the evidence ranking chooses from), and at which similarity rank. `--smoke`: 3
documents, 20 queries. Prints a table and a last line of JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.answer_quality import QUESTIONS, _norm, embedded_django, policy_files, policy_title  # noqa: E402
from bench.retrieval import measure, percentile  # noqa: E402

K = 5
SEED = 20261206
RAW_SENTENCES_SQL = (
    "SELECT id FROM knowledge_sentence WHERE tenant_id = %(tenant)s AND live AND embedding_model = %(model)s "
    "ORDER BY embedding <=> %(q)s::vector LIMIT 40"
)


def publish(tenant: Any, documents: list[Path]) -> None:
    from apps.knowledge import ingestion
    from apps.knowledge.models import VersionStatus
    from apps.knowledge.services import Upload, document_upload, version_publish

    for path in documents:
        version = document_upload(
            tenant=tenant,
            actor=None,
            upload=Upload(filename=path.name, data=path.read_bytes()),
            title=policy_title(path),
        )
        ready = ingestion.version_ingest(version_id=str(version.id))
        if ready is None or ready.status != VersionStatus.READY:
            raise SystemExit(f"{path.name} did not ingest")
        version_publish(version=ready, actor=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--smoke", action="store_true", help="3 documents, 20 queries")
    args = parser.parse_args()
    if args.smoke:
        args.queries = 20
    documents = policy_files(args.smoke)
    rng = np.random.default_rng(SEED)
    warmup = min(20, args.queries)

    with embedded_django("hds-"):
        from django.conf import settings
        from django.db import connection

        from apps.accounts.services import tenant_create
        from apps.guardrails.pii import pii_redact
        from apps.knowledge.models import Chunk, Sentence
        from apps.knowledge.retrieval import (
            _HNSW_SETTINGS,
            knowledge_search,
            retriever,
            sentence_candidates,
            sentence_neighbours,
        )
        from apps.llm.embeddings import embedder

        tenant = tenant_create(slug="nimbus", name="Nimbus Telecom")
        started = time.perf_counter()
        publish(tenant, documents)
        ingest_s = time.perf_counter() - started
        model = settings.EMBEDDINGS_MODEL

        names = {p.name for p in documents}
        rows = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line]
        rows = [r for r in rows if not r["answerable"] or r["document"] in names]
        redacted = [pii_redact(r["question"]) for r in rows]
        vectors = embedder().embed([str(r) for r in redacted])
        queries = [(redacted[i % len(rows)], vectors[i % len(rows)]) for i in range(args.queries)]

        def raw_sentences(query: Any, vector: list[float]) -> list[Any]:
            params: dict[str, Any] = {"q": str(vector), "tenant": tenant.id, "model": model}
            with connection.cursor() as cursor:
                cursor.execute(f"{_HNSW_SETTINGS}; {RAW_SENTENCES_SQL}", params)
                while cursor.description is None and cursor.nextset():
                    pass
                return [r[0] for r in cursor.fetchall()]

        def select_1(query: Any, vector: list[float]) -> list[Any]:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                return [cursor.fetchone()]

        def two_trips(query: Any, vector: list[float]) -> list[Any]:
            passages = knowledge_search(tenant=tenant, query=query, k=K, query_vector=vector)
            sentences = sentence_candidates(tenant=tenant, query=query, vector=vector)
            return [*passages.passages, *sentences]

        def neighbours(query: Any, vector: list[float]) -> list[Any]:
            best = sentence_candidates(tenant=tenant, query=query, vector=vector)[:2]
            ids = [hit.sentence_id for hit in best]
            return list(sentence_neighbours(tenant=tenant, sentence_ids=ids, before=1, after=2).items())

        configured = retriever()
        runs: dict[str, Callable[[Any, list[float]], list[Any]]] = {
            "candidates": lambda q, v: sentence_candidates(tenant=tenant, query=q, vector=v),
            "passages": lambda q, v: knowledge_search(tenant=tenant, query=q, k=K, query_vector=v).passages,
            "retrieve": lambda q, v: [
                configured.retrieve(tenant=tenant, query=q, vector=v, k=K, threshold=None)
            ],
            "two_trips": two_trips,
            "neighbours": neighbours,
            "raw_sentences": raw_sentences,
            "select_1": select_1,
        }
        millis, _ = measure(runs, queries, warmup, rng)

        # The pool's coverage: is the labelled answer phrase inside a candidate sentence, and how high?
        ranks: list[int | None] = []
        pool_sizes: list[int] = []
        for row, query, vector in zip(rows, redacted, vectors, strict=True):
            hits = sentence_candidates(tenant=tenant, query=query, vector=vector)
            pool_sizes.append(len(hits))
            if row["answerable"]:
                answer = _norm(row["answer"])
                ranks.append(next((i for i, h in enumerate(hits, 1) if answer in _norm(h.text)), None))
        sentences = Sentence.objects.filter(tenant=tenant).count()
        chunks = Chunk.objects.filter(tenant=tenant).count()
        with connection.cursor() as cursor:
            cursor.execute("SELECT version(), extversion FROM pg_extension WHERE extname = 'vector'")
            postgres_version, pgvector_version = cursor.fetchone()

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
        "candidates/raw_sentences": ratio("candidates", "raw_sentences"),
        "retrieve/two_trips": ratio("retrieve", "two_trips"),
        "retrieve/passages": ratio("retrieve", "passages"),
    }
    found = [r for r in ranks if r is not None]
    coverage = {
        "answerable": len(ranks),
        "answer_in_pool": round(len(found) / max(1, len(ranks)), 3),
        "answer_in_top_5": round(sum(r <= 5 for r in found) / max(1, len(ranks)), 3),
        "answer_in_top_10": round(sum(r <= 10 for r in found) / max(1, len(ranks)), 3),
        "pool_size_mean": round(sum(pool_sizes) / max(1, len(pool_sizes)), 1),
    }
    config = {
        "documents": len(documents),
        "chunks": chunks,
        "sentences": sentences,
        "ingest_and_publish_s": round(ingest_s, 2),
        "queries": args.queries,
        "warmup": warmup,
        "k": K,
        "embedding_model": model,
        "query_vector_given": True,
        "postgres": postgres_version.split(" on ")[0],
        "pgvector": pgvector_version,
        "cpus": os.cpu_count(),
        "smoke": args.smoke,
    }
    print(
        f"{config['documents']} documents, {chunks} chunks, {sentences} sentences; {args.queries} queries, "
        f"{os.cpu_count()} cpus"
    )
    print(f"{'variant':<16}{'p50 ms':>9}{'p95 ms':>9}")
    for name, figures in latency.items():
        print(f"{name:<16}{figures['p50_ms']:>9.2f}{figures['p95_ms']:>9.2f}")
    for name, figures in ratios.items():
        print(f"{name:<28}{figures['p50']:>7.2f}{figures['p95']:>7.2f}")
    print(
        f"answer phrase in the pool: {coverage['answer_in_pool']:.3f} "
        f"(top 5 {coverage['answer_in_top_5']:.3f}, top 10 {coverage['answer_in_top_10']:.3f}) "
        f"over {coverage['answerable']} answerable questions"
    )
    print(json.dumps({"latency": latency, "ratios": ratios, "coverage": coverage, "config": config}))


if __name__ == "__main__":
    main()
