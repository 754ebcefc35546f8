"""How well a tool is chosen, and its arguments filled, on a labelled set of requests: the embedding chooser
against the bundled model's decision, side by side, and a capable model when one is configured.

    .venv/bin/python bench/tool_choice.py [--smoke] [--llm-base-url URL --llm-model NAME [--llm-api-key K]]

Requests: bench/data/tool_requests.jsonl, written for the demo telecom (signed in as cust-1001, on Plus 20
GB), each `{"request", "tool": name | null, "arguments": {...} | null}`. `arguments` null on a tool
request means the words do not hold a required argument (no order number given): the right outcome is no
call and a question for it. `{}` means any arguments the tool's schema accepts (a ticket's free text),
plus exactly the values listed. None of its phrasings is an example request of a tool
(apps/tools/builtin.py) or of "no tool" (apps/tools/choice.py); the script checks.

Services as bench/tool_decision.py starts them (its `model_servers`: the two llama.cpp servers `make run`
starts, Django settings pointed at them, no database). Each request is redacted once (`pii_redact`, as at
receipt, untimed), then, interleaved A B per request:

  a  embedding chooser  `tools_choose_explained` (what `tools_choose` runs, without its two database
                        reads: the company's own examples, none here, and the plan codes, here the demo
                        catalogue read through `ToolSpec.known_values` as the demo adapter serves it) with
                        the five built-in tools offered and the request's vector embedded beforehand (the
                        assistant embeds it once for retrieval too: its p50 is reported on its own line).
                        The model (decisions server) is asked only for what words cannot hold.
  b  bundled model      `tools_decide(tool_decision_prompt(...), tools=the five specs)`, tool_choice
                        "auto": the decision the assistant made before the chooser.
  c  capable model      the same decision as (b) sent to --llm-base-url/--llm-model, when given.

Every request starts with the model breakers closed, and model calls may take MODEL_TIMEOUT_SECONDS: on
a shared machine a timeout would otherwise be scored as "no tool" (what failures remain are `errors`).

A method's predicted tool is its call's tool; for (a) also the tool it asks an argument for. Reported per
method: precision (right tool / tool predicted), recall (right tool / tool needed), accuracy over all
requests (no tool needed and none predicted counts as right), no-tool accuracy, argument exactness (of
the right-tool predictions: the labelled outcome, call or question, with exactly the labelled values,
compared case-insensitively, and arguments the schema accepts), end-to-end (right tool and exact
arguments, or rightly no tool), and p50/p95 wall time per request. Then per tool, the misses of (a), a
table, and a last line of JSON.

`--smoke`: two requests per tool and four with no tool, for CI (tests/bench/test_tool_choice_smoke.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stats import argv_value, p50_p95, package_version  # noqa: E402
from bench.tool_decision import COMPANY, MODEL_ALIAS, _raise_exit, model_servers  # noqa: E402

DATA = ROOT / "bench" / "data" / "tool_requests.jsonl"
CUSTOMER_PLAN = "plus-20"  # cust-1001's, in the demo data
NOT_MEASURED = "not measured: no capable model configured"
# On a shared 2-core machine a decision can wait its turn for tens of seconds; a timeout, or the breaker it
# opens, would be scored as "no tool". Quality is what is measured here: a model call gets this long, and
# every request starts with closed breakers. Failures that remain are counted (`errors`).
MODEL_TIMEOUT_SECONDS = 120.0


@dataclass
class Outcome:
    tool: str | None  # the tool predicted (a call, or for the chooser the tool it asks an argument for)
    calls: list[tuple[str, str]]  # (name, arguments JSON) as returned
    ask_for: str | None
    error: str
    ms: float
    model_calls: int = 0  # requests to a model server this method made for the request


@dataclass
class Row:
    request: str
    tool: str | None
    arguments: dict[str, Any] | None
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    embed_ms: float = 0.0


def load(smoke: bool) -> list[Row]:
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    if smoke:
        taken: dict[str | None, int] = {}
        limit = {None: 4}
        picked = []
        for row in rows:
            if taken.get(row["tool"], 0) < limit.get(row["tool"], 2):
                taken[row["tool"]] = taken.get(row["tool"], 0) + 1
                picked.append(row)
        rows = picked
    return [Row(request=r["request"], tool=r["tool"], arguments=r["arguments"]) for r in rows]


def held_out(rows: list[Row]) -> None:
    from apps.tools.choice import NO_TOOL_EXAMPLES
    from apps.tools.registry import tool_specs

    examples = {e.casefold() for s in tool_specs() for e in s.examples} | {
        e.casefold() for e in NO_TOOL_EXAMPLES
    }
    shared = [r.request for r in rows if r.request.casefold() in examples]
    if shared:
        raise SystemExit(f"labelled requests that are also example requests: {shared}")


def demo_known_values() -> Any:
    """The plan codes as the demo adapter serves them to cust-1001 (current plan and plans on sale),
    through the plan change tool's own `known_values`."""
    from apps.telco.demo_data import DEMO_PLANS
    from apps.tools.builtin import PLAN_CHANGE
    from apps.tools.schemas import PlanInfo, PlanOption, PlansComparison

    def info(plan: Any) -> dict[str, Any]:
        return {
            "code": plan.code,
            "name": plan.name,
            "monthly_price": plan.monthly_price,
            "currency": "EUR",
            "data_gb": plan.data_gb,
            "minutes": plan.minutes,
        }

    current = next(p for p in DEMO_PLANS if p.code == CUSTOMER_PLAN)
    comparison = PlansComparison(
        current=PlanInfo(**info(current)),
        options=[
            PlanOption(**info(p), monthly_difference=p.monthly_price - current.monthly_price)
            for p in DEMO_PLANS
            if p.is_active and p.code != current.code
        ],
    )

    class Catalogue:
        breaker_key = "bench"

        def plans_compare(self, *, customer: str) -> PlansComparison:
            return comparison

    assert PLAN_CHANGE.known_values is not None
    values = PLAN_CHANGE.known_values(Catalogue(), "cust-1001")  # type: ignore[arg-type]

    async def loader(spec: Any) -> Any:
        return values

    return loader


async def measure(rows: list[Row], args: argparse.Namespace) -> dict[str, Any]:
    from apps.conversations.prompting import tool_decision_prompt
    from apps.guardrails.pii import pii_redact
    from apps.llm.breaker import reset_breakers
    from apps.llm.embeddings import embedder
    from apps.llm.tooling import tools_decide
    from apps.tools.choice import tools_choose_explained
    from apps.tools.registry import tool_specs

    specs = tool_specs()
    tools = [spec.function_spec() for spec in specs]
    known = demo_known_values()
    questions = [pii_redact(row.request) for row in rows]  # as at receipt; loads Presidio once, untimed
    current = embedder()
    current.embed(["warm up"])
    # The first choice in a process embeds every tool text once (then cached): measured on its own.
    [warm] = current.embed(["Where is my order NM-100234?"])
    started = time.perf_counter()
    await tools_choose_explained(
        question=pii_redact("Where is my order NM-100234?"), vector=warm, specs=specs, company=COMPANY
    )
    cold_ms = (time.perf_counter() - started) * 1000

    async def decide(question: Any, **model: Any) -> Outcome:
        reset_breakers()
        started = time.perf_counter()
        decision = await tools_decide(
            tool_decision_prompt(company=COMPANY, question=question, history=[]), tools=tools, **model
        )
        ms = (time.perf_counter() - started) * 1000
        calls = [(c.name, c.arguments) for c in decision.calls]
        return Outcome(calls[0][0] if calls else None, calls, None, decision.error, ms, 1)

    for n, (row, question) in enumerate(zip(rows, questions, strict=True), start=1):
        started = time.perf_counter()
        [vector] = current.embed([str(question)])
        row.embed_ms = (time.perf_counter() - started) * 1000
        reset_breakers()
        started = time.perf_counter()
        choice = await tools_choose_explained(
            question=question, vector=vector, specs=specs, company=COMPANY, known_values=known
        )
        ms = (time.perf_counter() - started) * 1000
        decision = choice.decision
        row.outcomes["embedding"] = Outcome(
            choice.tool,
            [(c.name, c.arguments) for c in decision.calls],
            decision.ask_for,
            decision.error,
            ms,
            int(bool(decision.prompt_tokens or decision.error)),
        )
        row.outcomes["bundled_model"] = await decide(question)
        if args.llm_base_url:
            row.outcomes["capable_model"] = await decide(
                question, model=args.llm_model, base_url=args.llm_base_url
            )
        print(
            f"  {n:>3}/{len(rows)}  "
            + "  ".join(f"{k}: {o.tool or '-'} ({o.ms:.0f} ms)" for k, o in row.outcomes.items())
            + f"  | {row.request}",
            file=sys.stderr,
            flush=True,
        )
    return {"first_choice_ms": round(cold_ms, 1)}


# ---- scoring -----------------------------------------------------------------------------------------


def arguments_exact(row: Row, outcome: Outcome) -> bool:
    """The labelled outcome: a question for the argument (label null), or one call with the labelled
    values whose arguments the tool's schema accepts."""
    from pydantic import ValidationError

    from apps.tools.registry import tool_spec

    if row.arguments is None:
        return not outcome.calls
    if len(outcome.calls) != 1 or outcome.calls[0][0] != row.tool:
        return False
    try:
        given = json.loads(outcome.calls[0][1] or "{}")
    except ValueError:
        return False
    spec = tool_spec(row.tool or "")
    if not isinstance(given, dict) or spec is None:
        return False
    try:
        spec.input_model.model_validate(given)
    except ValidationError:
        return False

    def same(a: Any, b: Any) -> bool:
        return a.casefold() == b.casefold() if isinstance(a, str) and isinstance(b, str) else a == b

    return all(same(given.get(k), v) for k, v in row.arguments.items())


def score(rows: list[Row], method: str) -> dict[str, Any]:
    scored = [(r, r.outcomes[method]) for r in rows if method in r.outcomes]
    if not scored:
        return {}
    need = [(r, o) for r, o in scored if r.tool is not None]
    none = [(r, o) for r, o in scored if r.tool is None]
    predicted = [(r, o) for r, o in scored if o.tool is not None]
    right = [(r, o) for r, o in need if o.tool == r.tool]
    right_none = [(r, o) for r, o in none if o.tool is None]
    exact = [(r, o) for r, o in right if arguments_exact(r, o)]
    per_tool = {}
    for tool in sorted({r.tool for r in rows if r.tool}):
        labelled = [(r, o) for r, o in scored if r.tool == tool]
        chose = [(r, o) for r, o in scored if o.tool == tool]
        hits = [(r, o) for r, o in labelled if o.tool == tool]
        per_tool[tool] = {
            "n": len(labelled),
            "precision": round(len(hits) / len(chose), 3) if chose else None,
            "recall": round(len(hits) / len(labelled), 3) if labelled else None,
            "arguments_exact": sum(arguments_exact(r, o) for r, o in hits),
        }
    return {
        "n": len(scored),
        "precision": round(len(right) / len(predicted), 3) if predicted else None,
        "recall": round(len(right) / len(need), 3) if need else None,
        "accuracy": round((len(right) + len(right_none)) / len(scored), 3),
        "no_tool_accuracy": round(len(right_none) / len(none), 3) if none else None,
        "arguments_exact": round(len(exact) / len(right), 3) if right else None,
        "end_to_end": round((len(exact) + len(right_none)) / len(scored), 3),
        "ms": p50_p95([o.ms for _, o in scored], digits=1),
        "model_calls": sum(o.model_calls for _, o in scored),
        "errors": sum(1 for _, o in scored if o.error),
        "per_tool": per_tool,
    }


def report(rows: list[Row], args: argparse.Namespace, servers: Any, extra: dict[str, Any]) -> None:
    from apps.tools import choice
    from apps.tools.registry import tool_specs

    methods = {
        "embedding": "(a) embedding chooser: tools_choose",
        "bundled_model": f"(b) bundled model: tools_decide ({MODEL_ALIAS})",
    }
    if args.llm_base_url:
        methods["capable_model"] = f"(c) capable model: tools_decide ({args.llm_model})"
    scores = {m: score(rows, m) for m in methods}
    embed = p50_p95([r.embed_ms for r in rows], digits=1)
    need = sum(1 for r in rows if r.tool)
    print(
        f"Tool choice on {len(rows)} labelled requests ({need} need a tool, {len(rows) - need} none) for the "
        f"demo telecom, {len(tool_specs())} tools offered, {os.cpu_count()} CPUs (load average "
        f"{extra['load_before']} before, {os.getloadavg()[0]:.2f} after)"
    )
    print()
    head = f"{'method':<48}{'precision':>10}{'recall':>8}{'accuracy':>10}{'no-tool':>9}{'args':>7}"
    print(head + f"{'end-to-end':>12}{'p50 ms':>9}{'p95 ms':>9}")

    def cell(value: float | None, width: int, digits: int = 3) -> str:
        return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"

    for method, label in methods.items():
        s = scores[method]
        print(
            f"{label:<48}{cell(s['precision'], 10)}{cell(s['recall'], 8)}{cell(s['accuracy'], 10)}"
            f"{cell(s['no_tool_accuracy'], 9)}{cell(s['arguments_exact'], 7)}{cell(s['end_to_end'], 12)}"
            f"{cell(s['ms']['p50'], 9, 1)}{cell(s['ms']['p95'], 9, 1)}"
        )
    if not args.llm_base_url:
        print(f"{'(c) capable model':<48}{NOT_MEASURED}")
    print()
    print(
        f"(a) excludes the request's embedding, which the assistant computes once for retrieval too: "
        f"p50 {embed['p50']} ms, p95 {embed['p95']} ms. Its first choice in a process embeds the tool texts "
        f"once: {extra['first_choice_ms']} ms. (a) asked the model {scores['embedding']['model_calls']} "
        f"times (what words cannot hold); (b) once per request."
    )
    print()
    print(f"{'per tool: precision / recall':<30}{'n':>4}" + "".join(f"{m:>22}" for m in methods))
    for tool, row in scores["embedding"]["per_tool"].items():
        cells = ""
        for method in methods:
            t = scores[method]["per_tool"][tool]
            cells += f"{cell(t['precision'], 10)} / {cell(t['recall'], 9)}"
        print(f"{tool:<30}{row['n']:>4}{cells}")
    print()
    print("(a) misses (labelled -> chosen):")
    for r in rows:
        o = r.outcomes["embedding"]
        if o.tool != r.tool or (o.tool and not arguments_exact(r, o)):
            args_text = "; ".join(a for _, a in o.calls) or (
                f"asks for {o.ask_for}" if o.ask_for else "no call"
            )
            print(f"  {r.tool or 'no tool'} -> {o.tool or 'no tool'} ({args_text}): {r.request}")
    config = {
        "data": str(DATA.relative_to(ROOT)),
        "smoke": args.smoke,
        "company": COMPANY,
        "tools": [s.name for s in tool_specs()],
        "thresholds": {
            "similarity": choice.SIMILARITY,
            "margin_over_none": choice.MARGIN_OVER_NONE,
            "margin_over_runner_up": choice.MARGIN_OVER_RUNNER_UP,
            "topic_bonus": choice.TOPIC_BONUS,
            "impersonal_bonus": choice.IMPERSONAL_BONUS,
        },
        "embedding_model": os.environ.get("EMBEDDINGS_MODEL", "all-MiniLM-L6-v2"),
        "decisions_server": {
            "chat_format": argv_value(servers.decisions.argv, "--chat_format"),
            "model_file": Path(argv_value(servers.decisions.argv, "--model") or "?").name,
        },
        "capable_model": {"base_url": args.llm_base_url, "model": args.llm_model}
        if args.llm_base_url
        else None,
        "llama_cpp_python": package_version("llama_cpp_python"),
        "python": platform.python_version(),
        "model_timeout_s": MODEL_TIMEOUT_SECONDS,
        "cpus": os.cpu_count(),
        "load_average_1min": {"before": extra["load_before"], "after": round(os.getloadavg()[0], 2)},
    }
    print(
        json.dumps(
            {
                "bench": "tool_choice",
                "requests": len(rows),
                "need_tool": need,
                "methods": {m: scores[m] for m in methods},
                "capable_model": scores.get("capable_model") or NOT_MEASURED,
                "embed_ms": embed,
                "first_choice_ms": extra["first_choice_ms"],
                "rows": [
                    {
                        "request": r.request,
                        "tool": r.tool,
                        "arguments": r.arguments,
                        **{
                            m: {
                                "tool": o.tool,
                                "calls": o.calls,
                                "ask_for": o.ask_for,
                                "exact": arguments_exact(r, o) if o.tool == r.tool and r.tool else None,
                                "ms": round(o.ms, 1),
                                "error": o.error,
                            }
                            for m, o in r.outcomes.items()
                        },
                    }
                    for r in rows
                ],
                "config": config,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--smoke", action="store_true", help="CI size: two requests per tool, four with none")
    parser.add_argument("--llm-base-url", help="an OpenAI-compatible endpoint for (c), e.g. https://.../v1")
    parser.add_argument("--llm-model", help="the model name for (c)")
    parser.add_argument("--llm-api-key", help="the key for (c) (the local servers ignore it)")
    args = parser.parse_args()
    if bool(args.llm_base_url) != bool(args.llm_model):
        parser.error("--llm-base-url and --llm-model go together")
    if args.llm_api_key:
        os.environ["LLM_API_KEY"] = args.llm_api_key  # read by settings at django.setup()
    os.environ["LLM_FIRST_TOKEN_TIMEOUT_SECONDS"] = str(MODEL_TIMEOUT_SECONDS)  # tools_decide's timeout
    signal.signal(signal.SIGTERM, _raise_exit)
    started = time.monotonic()
    with model_servers() as servers:
        import apps.tools.builtin  # noqa: F401  (registers the five built-in tools)

        rows = load(args.smoke)
        held_out(rows)
        print(
            f"model servers ready in {time.monotonic() - started:.0f}s; {len(rows)} requests", file=sys.stderr
        )
        load_before = round(os.getloadavg()[0], 2)
        extra = asyncio.run(measure(rows, args))
        extra["load_before"] = load_before

    from django.db import connections

    if any(connections[alias].connection is not None for alias in connections):
        raise SystemExit("a database connection was opened: this benchmark is meant to need none")
    report(rows, args, servers, extra)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted: the model servers were stopped", file=sys.stderr)
        sys.exit(130)
