"""The answers widget customers get, per answer style: right, abstained, unsupported, how fast; and the
answer cache's hits and false hits.

    .venv/bin/python bench/answers.py [--limit N] [--concurrent N] [--smoke]

The stack is bench/ttft.py's (`ttft_stack`): embedded PostgreSQL+pgvector and Valkey, the bundled
SmolLM2 GGUF file behind the model server `make run` starts (with its parallel slots and prompt cache),
Daphne with the production settings, the demo company loaded (`manage.py demo_load`). Every question
is asked as a new visitor over the real widget websocket (bench/ttft.py's `widget_ask`: a fresh session,
`/ws/widget/`, `hello`, the `message` frame, every frame until the reply's final event; a session
refused by the per-address throttle is asked again after its Retry-After, before the clock starts).
What the pipeline recorded is read back from the database (Message, AssistantTrace), which this process
shares.

For each answer style, `quote` then `compose` (the demo company's `answer_style`, set through
`tenant_answers_configure` between runs; Daphne reads the tenant afresh every turn), after one unscored
warm-up question:

- the acceptance set ../shared/acceptance/demo_answers.jsonl, when it exists ({"q", "doc", "expect"};
  doc null: must abstain), and the labelled set bench/data/questions.jsonl (answerable questions carry
  an "answer" phrase and a "document" file). `--limit N` caps the labelled questions (default: all in
  `quote`, 40 in `compose`, where every answer calls the model), keeping the file's share of
  unanswerable ones; answerable ones are taken round-robin over the documents.
- Graded as /work/shared/tools/widget_answers.py grades the widget: an answerable question is right when
  the final answer text holds one of its fact phrases (case-insensitive; curly quotes and runs of spaces
  folded) and, for the acceptance set, a citation's title equals its document's title; for the labelled
  set the phrase and any citation suffice (the right document cited is reported alongside). An
  unanswerable question is rightly abstained when the answer has no citation and says it does not know
  (widget_answers.py's wording). "Wrongly abstained": answerable, but the reply abstained.
- Unsupported sentences shown: an audit independent of apps.guardrails.support. Every composed sentence
  shown (trace answer.shown) has each of its numbers and amounts (digits, and number words read as
  digits; "€12.00" == "12") looked up among the numbers of the evidence sentences the same trace
  recorded; each sentence holding one that is not there counts once. Those whose missing numbers the
  customer's own question holds are counted apart (the support check accepts a number from the
  question; this audit does not). Dropped sentences (trace answer.dropped) are counted too.
- First content (message frame sent -> first `assistant.delta`) and complete (-> the final event),
  p50/p95 in milliseconds. Each set starts with a cold answer cache (the tenant's knowledge epoch bumped
  through `tenant_knowledge_epoch_bump`, which is how publishing invalidates it), so these are the
  pipeline's times; the cache hits a set made on its own repeats are reported.
- `--concurrent N` (default 8): N answerable questions sent at once by N visitors, p50/p95 first content
  and complete, failures (an error frame, a reply not complete, no content, a timeout), and the desk's
  own clock (Message.timings ttft_ms, receipt -> first content) to tell the server from the sockets.

The answer cache, in `quote` style: for each pair of bench/data/cache_near_misses.jsonl ({"stored",
"asked", "same"}), a cold cache, "stored" asked by one new visitor, then "asked" by another; the
result is the "asked" reply's AssistantTrace.retrieval["cache"]["result"] ("hit_exact",
"hit_neighbour", "miss"). A hit on a pair with same=false is a false hit (must be 0); hits on same=true
pairs are the cache's use. Pairs whose "stored" answer was not cached (it abstained) are counted apart,
and so are turns that ended before the cache was consulted (handed to a person by a sensitive topic).

Absolute milliseconds on a shared 2-core machine are noise (CONTRACTS §4); the same-run floor for the
first content and the model's sentences is bench/ttft.py's. This bench is about what the answers say.

`--smoke`: 3 answerable and 2 unanswerable acceptance questions and 2 cache pairs (one of each kind) in
`quote`, 2 answerable acceptance questions in `compose`, and 2 concurrent questions in `quote`; for CI
(tests/bench/test_answers_smoke.py).

Prints a table, then a last line of JSON with every figure and the configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from apps.releases.grading import answer_grade, unsupported_numbers  # noqa: E402
from apps.releases.report import table_lines  # noqa: E402
from bench.answer_quality import POLICIES, QUESTIONS, policy_title  # noqa: E402
from bench.stats import p50_p95  # noqa: E402
from bench.ttft import (  # noqa: E402
    REQUEST_TIMEOUT_SECONDS,
    Reply,
    Stack,
    _raise_exit,
    llm_config,
    questions_round_robin,
    session_token,
    ttft_stack,
    widget_ask,
)

ACCEPTANCE = ROOT.parent / "shared" / "acceptance" / "demo_answers.jsonl"
CACHE_PAIRS = ROOT / "bench" / "data" / "cache_near_misses.jsonl"
STYLES = ("quote", "compose")
COMPOSE_LIMIT = 40
DEFAULT_CONCURRENT = 8
WARMUP_QUESTION = "How do I pay my bill?"
SMOKE_ANSWERABLE, SMOKE_UNANSWERABLE, SMOKE_COMPOSE, SMOKE_CONCURRENT = 3, 2, 2, 2


# ---- questions ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Question:
    set: str  # "acceptance" | "labelled"
    id: str
    text: str
    answerable: bool
    expect: tuple[str, ...] = ()  # fact phrases, any one suffices
    document: str = ""  # the title of the policy that answers it


def acceptance_questions() -> list[Question]:
    if not ACCEPTANCE.exists():
        return []
    rows = [json.loads(line) for line in ACCEPTANCE.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [
        Question(
            set="acceptance",
            id=f"acc{n:02d}",
            text=row["q"],
            answerable=bool(row.get("doc")),
            expect=tuple(row.get("expect") or ()),
            document=row.get("doc") or "",
        )
        for n, row in enumerate(rows, start=1)
    ]


def labelled_questions(limit: int | None) -> list[Question]:
    """All of bench/data/questions.jsonl, or `limit` of them with the file's share of unanswerable ones;
    answerable ones round-robin over the documents, so a small sample still covers every policy."""
    rows = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    answerable = questions_round_robin()
    unanswerable = [r for r in rows if not r["answerable"]]
    if limit is not None and limit < len(rows):
        take_unanswerable = round(limit * len(unanswerable) / len(rows))
        answerable, unanswerable = answerable[: limit - take_unanswerable], unanswerable[:take_unanswerable]
    titles = {path.name: policy_title(path) for path in POLICIES.glob("*.md")}
    return [
        Question(
            set="labelled",
            id=r["id"],
            text=r["question"],
            answerable=True,
            expect=(r["answer"],),
            document=titles.get(r["document"], r["document"]),
        )
        for r in answerable
    ] + [Question(set="labelled", id=r["id"], text=r["question"], answerable=False) for r in unanswerable]


def cache_pairs() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CACHE_PAIRS.read_text(encoding="utf-8").splitlines() if line.strip()]


# ---- grading -----------------------------------------------------------------------------------------

# Graded by apps/releases/grading.py, the one copy golden runs (manage.py golden_run) share.


@dataclass
class Graded:
    question: Question
    style: str
    reply: Reply | None  # None: the request itself failed (timeout, connection)
    failure: str = ""
    right: bool = False
    abstained: bool = False
    document_cited: bool = False
    cache: str = ""
    shown: list[str] = field(default_factory=list)
    dropped: int = 0
    fell_back: bool = False
    server_first_ms: float | None = None  # the desk's own clock: message received -> first content
    unsupported: list[dict[str, Any]] = field(default_factory=list)  # audited violations


def grade(question: Question, style: str, reply: Reply | None, record: dict[str, Any] | None) -> Graded:
    """`record`: what the database holds of the reply (`read_record`)."""
    graded = Graded(question=question, style=style, reply=reply)
    if reply is None:
        graded.failure = "no reply"
        return graded
    if reply.status != "complete" or reply.ttft_ms is None:
        graded.failure = reply.status or "no final event"
        if reply.ttft_ms is None and reply.status == "complete":
            graded.failure = "no content"
    titles = [str(c.get("title") or "") for c in reply.citations]
    verdict = answer_grade(
        text=reply.text,
        titles=titles,
        answerable=question.answerable,
        expect=question.expect,
        document=question.document,
        need_document=question.set == "acceptance",
        reply_abstained=reply.abstained,
    )
    graded.abstained = verdict.abstained
    graded.document_cited = verdict.document_cited
    graded.right = verdict.right and not graded.failure
    if record is not None:
        retrieval = record["retrieval"]
        graded.server_first_ms = record["timings"].get("ttft_ms")
        answer = retrieval.get("answer") or {}
        graded.cache = str((retrieval.get("cache") or {}).get("result", ""))
        graded.shown = [str(s) for s in answer.get("shown") or []]
        graded.dropped = len(answer.get("dropped") or [])
        graded.fell_back = bool(answer.get("fell_back_to_quote"))
        graded.unsupported = unsupported_numbers(
            shown=graded.shown,
            evidence=[s for item in retrieval.get("evidence") or [] for s in item.get("sentences") or []],
            question=question.text,
        )
    return graded


def read_record(message_id: str) -> dict[str, Any] | None:
    from apps.conversations.models import AssistantTrace

    trace = (
        AssistantTrace.objects.select_related("message").filter(message_id=message_id).first()
        if message_id
        else None
    )
    if trace is None:
        return None
    return {"retrieval": trace.retrieval, "prompt": trace.prompt, "timings": dict(trace.message.timings)}


# ---- asking ------------------------------------------------------------------------------------------


def ask(stack: Stack, text: str) -> tuple[Reply | None, str]:
    try:
        return asyncio.run(widget_ask(stack, text)), ""
    except Exception as exc:  # a failed request is counted, not fatal: the run goes on
        return None, f"{exc.__class__.__name__}: {exc}"[:200]


def ask_together(stack: Stack, texts: list[str]) -> list[tuple[Reply | None, str]]:
    """Every question at once, each by its own new visitor: sessions first, then the sockets together."""
    tokens: list[str | None] = []
    for _ in texts:
        try:
            tokens.append(session_token(stack))
        except RuntimeError:
            tokens.append(None)

    async def one(text: str, token: str | None) -> tuple[Reply | None, str]:
        if token is None:
            return None, "no session"
        try:
            return await widget_ask(stack, text, token=token, settle=0.0), ""
        except Exception as exc:  # a failed request is counted, not fatal: the run goes on
            return None, f"{exc.__class__.__name__}: {exc}"[:200]

    async def all_of_them() -> list[tuple[Reply | None, str]]:
        return list(await asyncio.gather(*(one(t, k) for t, k in zip(texts, tokens, strict=True))))

    return asyncio.run(all_of_them())


def demo_tenant(stack: Stack) -> Any:
    from apps.accounts.models import Tenant

    return Tenant.objects.get(widget_key=stack.widget_key)


def style_set(stack: Stack, style: str) -> None:
    from apps.accounts.services import tenant_answers_configure

    tenant_answers_configure(tenant=demo_tenant(stack), answer_style=style)


def cache_cold(stack: Stack) -> None:
    """What publishing does: answers cached under the old knowledge epoch are never served again."""
    from apps.accounts.services import tenant_knowledge_epoch_bump

    tenant_knowledge_epoch_bump(tenant_id=demo_tenant(stack).id)


def run_set(stack: Stack, style: str, questions: list[Question]) -> list[Graded]:
    cache_cold(stack)
    results = []
    for n, question in enumerate(questions, start=1):
        reply, error = ask(stack, question.text)
        record = read_record(reply.message_id) if reply else None
        graded = grade(question, style, reply, record)
        if error:
            graded.failure = error
        results.append(graded)
        mark = "ok" if graded.right else ("FAILED " + graded.failure if graded.failure else "wrong")
        print(
            f"  {style:<8}{question.set:<11}{n:>4}/{len(questions)} {question.id:<6} "
            f"{_ms(reply.ttft_ms if reply else None)} {_ms(reply.complete_ms if reply else None)} "
            f"shown {len(graded.shown)} dropped {graded.dropped} {mark}",
            file=sys.stderr,
            flush=True,
        )
    return results


def run_concurrent(stack: Stack, style: str, questions: list[Question]) -> dict[str, Any]:
    cache_cold(stack)
    started = time.perf_counter()
    replies = ask_together(stack, [q.text for q in questions])
    wall = time.perf_counter() - started
    graded = []
    for question, (reply, error) in zip(questions, replies, strict=True):
        g = grade(question, style, reply, read_record(reply.message_id) if reply else None)
        if error:
            g.failure = error
        graded.append(g)
    summary = summarise(graded)
    summary["wall_s"] = round(wall, 1)
    summary["failure_reasons"] = sorted({g.failure for g in graded if g.failure})
    print(
        f"  {style:<8}concurrent {len(questions)}: "
        f"first content p95 {summary['first_content_ms']['p95']} ms, {summary['failed']} failed",
        file=sys.stderr,
        flush=True,
    )
    return summary


def run_cache_pairs(stack: Stack, pairs: list[dict[str, Any]]) -> dict[str, Any]:
    from apps.conversations.models import CachedAnswer

    rows = []
    for n, pair in enumerate(pairs, start=1):
        cache_cold(stack)
        tenant = demo_tenant(stack)
        _, stored_error = ask(stack, pair["stored"])
        stored = CachedAnswer.objects.filter(tenant=tenant, knowledge_epoch=tenant.knowledge_epoch).exists()
        asked_reply, asked_error = ask(stack, pair["asked"])
        record = read_record(asked_reply.message_id) if asked_reply else None
        cache = ((record or {}).get("retrieval", {}).get("cache")) or {}
        # No cache entry in the trace: the turn ended before the lookup (handed to a person, refused).
        failed = bool(stored_error or asked_error) or asked_reply is None
        result = str(cache.get("result", "")) or ("failed" if failed else "not consulted")
        rows.append(
            {
                "stored": pair["stored"],
                "asked": pair["asked"],
                "same": bool(pair["same"]),
                "kind": pair.get("kind", ""),
                "stored_cached": stored,
                "result": result,
                "similarity": cache.get("similarity"),
                "error": stored_error or asked_error,
            }
        )
        print(
            f"  cache pair {n:>3}/{len(pairs)} same={pair['same']!s:<5} stored_cached={stored!s:<5} "
            f"{result}  {pair['kind']}",
            file=sys.stderr,
            flush=True,
        )
    same = [r for r in rows if r["same"]]
    different = [r for r in rows if not r["same"]]

    def hits(rs: list[dict[str, Any]]) -> int:
        return sum(1 for r in rs if r["result"].startswith("hit"))

    return {
        "pairs": len(rows),
        "same_pairs": len(same),
        "same_pairs_stored": sum(1 for r in same if r["stored_cached"]),
        "hits_on_same": hits(same),
        "hits_on_same_exact": sum(1 for r in same if r["result"] == "hit_exact"),
        "hits_on_same_neighbour": sum(1 for r in same if r["result"] == "hit_neighbour"),
        "different_pairs": len(different),
        "different_pairs_stored": sum(1 for r in different if r["stored_cached"]),
        "false_hits": hits(different),
        "not_consulted": sum(1 for r in rows if r["result"] == "not consulted"),
        "failed": sum(1 for r in rows if r["result"] == "failed" or r["error"]),
        "false_hit_pairs": [r for r in different if r["result"].startswith("hit")],
        "missed_same_pairs": [
            {k: r[k] for k in ("stored", "asked", "kind", "stored_cached", "result")}
            for r in same
            if not r["result"].startswith("hit")
        ],
    }


# ---- figures -----------------------------------------------------------------------------------------


def summarise(results: list[Graded]) -> dict[str, Any]:
    answerable = [g for g in results if g.question.answerable]
    unanswerable = [g for g in results if not g.question.answerable]
    replies = [g.reply for g in results if g.reply is not None]
    unsupported = [u for g in results for u in g.unsupported]
    return {
        "questions": len(results),
        "answerable": len(answerable),
        "right": sum(g.right for g in answerable),
        "right_document_cited": sum(g.document_cited for g in answerable),
        "unanswerable": len(unanswerable),
        "abstained_right": sum(g.right for g in unanswerable),
        "wrongly_abstained": sum(g.abstained for g in answerable),
        "answered_unanswerable": sum(not g.abstained and not g.failure for g in unanswerable),
        "composed_shown": sum(len(g.shown) for g in results),
        "unsupported_shown": len(unsupported),
        "unsupported_shown_from_question": sum(u["in_question"] for u in unsupported),
        "dropped": sum(g.dropped for g in results),
        "fell_back_to_quote": sum(g.fell_back for g in results),
        "cache_hits": sum(g.cache.startswith("hit") for g in results),
        "failed": sum(bool(g.failure) for g in results),
        "first_content_ms": p50_p95([r.ttft_ms for r in replies if r.ttft_ms is not None], digits=1),
        "complete_ms": p50_p95([r.complete_ms for r in replies if r.complete_ms is not None], digits=1),
        "server_first_content_ms": p50_p95(
            [g.server_first_ms for g in results if g.server_first_ms is not None], digits=1
        ),
    }


def misses(results: list[Graded]) -> list[dict[str, Any]]:
    """The wrong and failed answers, and every audited violation, for the JSON line."""
    rows = []
    for g in results:
        if g.right and not g.unsupported:
            continue
        rows.append(
            {
                "style": g.style,
                "set": g.question.set,
                "id": g.question.id,
                "q": g.question.text,
                "answerable": g.question.answerable,
                "right": g.right,
                "abstained": g.abstained,
                "failure": g.failure,
                "answer": " ".join((g.reply.text if g.reply else "").split())[:300],
                "cited": [c.get("title") for c in (g.reply.citations if g.reply else [])],
                "composed_shown": g.shown,
                "unsupported": g.unsupported,
            }
        )
    return rows


def _ms(value: float | None) -> str:
    return f"{value:7.0f} ms" if value is not None else f"{'-':>7}   "


def print_table(styles: dict[str, dict[str, Any]], cache: dict[str, Any] | None) -> None:
    rows = [
        (style, name, sets[name])
        for style, sets in styles.items()
        for name in ("acceptance", "labelled")
        if sets.get(name) is not None
    ]
    for line in table_lines(rows):
        print(line)
    for style, sets in styles.items():
        row = sets.get("concurrent")
        if row is None:
            continue
        print(
            f"{style:<9}concurrent {row['questions']}: "
            f"first content p50 {row['first_content_ms']['p50']} ms, "
            f"p95 {row['first_content_ms']['p95']} ms; "
            f"complete p95 {row['complete_ms']['p95']} ms; "
            f"desk's own first content p95 {row['server_first_content_ms']['p95']} ms; "
            f"right {row['right']}/{row['answerable']}; failed {row['failed']}; wall {row['wall_s']} s"
        )
    if cache is not None:
        print(
            f"answer cache (quote): hits on same-answer pairs {cache['hits_on_same']}/{cache['same_pairs']} "
            f"(exact {cache['hits_on_same_exact']}, neighbour {cache['hits_on_same_neighbour']}; "
            f"{cache['same_pairs_stored']} stored); "
            f"FALSE HITS {cache['false_hits']}/{cache['different_pairs']} "
            f"({cache['different_pairs_stored']} stored); cache not consulted {cache['not_consulted']}; "
            f"failed {cache['failed']}"
        )


# ---- the run -----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--limit", type=int, default=None, help="labelled questions per style (compose: 40)")
    parser.add_argument(
        "--concurrent", type=int, default=DEFAULT_CONCURRENT, help="questions at once; 0: none"
    )
    parser.add_argument("--smoke", action="store_true", help="CI size (see the module's docstring)")
    args = parser.parse_args()
    if args.limit is not None and args.limit < 0:
        parser.error("--limit must be at least 0")
    signal.signal(signal.SIGTERM, _raise_exit)
    started = time.monotonic()

    acceptance = acceptance_questions()
    if args.smoke:
        source = acceptance or labelled_questions(None)
        answerable = [q for q in source if q.answerable]
        unanswerable = [q for q in source if not q.answerable]
        name = "acceptance" if acceptance else "labelled"
        plan = {
            "quote": {name: answerable[:SMOKE_ANSWERABLE] + unanswerable[:SMOKE_UNANSWERABLE]},
            "compose": {name: answerable[:SMOKE_COMPOSE]},
        }
        pairs_all = cache_pairs()
        pairs = [next(p for p in pairs_all if p["same"]), next(p for p in pairs_all if not p["same"])]
        concurrent = {"quote": SMOKE_CONCURRENT}
    else:
        plan = {
            style: {
                **({"acceptance": acceptance} if acceptance else {}),
                "labelled": labelled_questions(
                    args.limit if args.limit is not None else (COMPOSE_LIMIT if style == "compose" else None)
                ),
            }
            for style in STYLES
        }
        pairs = cache_pairs()
        concurrent = {style: args.concurrent for style in STYLES} if args.concurrent > 0 else {}

    styles: dict[str, dict[str, Any]] = {}
    everything: list[Graded] = []
    cache: dict[str, Any] | None = None
    with ttft_stack() as stack:
        from django.conf import settings

        from apps.conversations.answering.select import tenant_threshold

        ready_s = time.monotonic() - started
        print(f"stack ready in {ready_s:.0f}s", file=sys.stderr, flush=True)
        load_before = round(os.getloadavg()[0], 2)
        for style, sets in plan.items():
            style_set(stack, style)
            ask(stack, WARMUP_QUESTION)  # unscored: loads what the first answer in this style needs
            styles[style] = {}
            for name, questions in sets.items():
                results = run_set(stack, style, questions)
                everything += results
                styles[style][name] = summarise(results)
            if style == "quote":
                cache = run_cache_pairs(stack, pairs)
            if concurrent.get(style):
                pool = [q for s in sets.values() for q in s if q.answerable]
                styles[style]["concurrent"] = run_concurrent(stack, style, pool[: concurrent[style]])
        tenant = demo_tenant(stack)
        config = {
            **llm_config(stack),
            "embeddings_model": settings.EMBEDDINGS_MODEL,
            "abstain_threshold": tenant_threshold(tenant),
            "answer_cache_similarity": settings.ANSWER_CACHE_SIMILARITY,
            "compose_max_tokens": settings.ANSWER_COMPOSE_MAX_TOKENS,
            "assistant_passages": settings.ASSISTANT_PASSAGES,
            "acceptance_file": str(ACCEPTANCE) if acceptance else None,
            "questions": {
                style: {name: len(qs) for name, qs in sets.items()} for style, sets in plan.items()
            },
            "cache_pairs": len(pairs),
            "concurrent": concurrent,
            "limit": args.limit,
            "request_timeout_s": REQUEST_TIMEOUT_SECONDS,
            "cpus": os.cpu_count(),
            "smoke": args.smoke,
            "stack_ready_s": round(ready_s, 1),
            "run_s": round(time.monotonic() - started, 1),
            "load_average_1min": {"before": load_before, "after": round(os.getloadavg()[0], 2)},
        }

    print()
    print(
        f"Answers over the widget websocket, {config['model_file']} ({config['quantisation']}) on "
        f"{config['llm_server']} ({config['llm_slots']} slots), "
        f"{config['embeddings_model']}, abstain threshold {config['abstain_threshold']}, "
        f"{config['cpus']} CPUs"
    )
    print()
    print_table(styles, cache)
    total = {
        key: sum(sets[name][key] for sets in styles.values() for name in sets)
        for key in ("unsupported_shown", "unsupported_shown_from_question", "dropped", "failed")
    }
    print(
        f"unsupported composed sentences shown (must be 0): {total['unsupported_shown']} "
        f"({total['unsupported_shown_from_question']} with a number the question holds); "
        f"dropped by the support check: {total['dropped']}"
    )
    print(
        json.dumps(
            {
                "bench": "answers",
                "unsupported_shown": total["unsupported_shown"],
                "false_cache_hits": cache["false_hits"] if cache else None,
                "cache_hits_on_same": cache["hits_on_same"] if cache else None,
                "dropped": total["dropped"],
                "failed": total["failed"] + (cache["failed"] if cache else 0),
                "styles": styles,
                "cache": cache,
                "misses": misses(everything),
                "config": config,
            }
        )
    )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted: every part of the stack was stopped", file=sys.stderr)
        sys.exit(130)
