"""What tracing costs a customer turn: the same widget turns through a desk with tracing on and one with it
off, interleaved.

    .venv/bin/python bench/tracing.py [--rounds 30] [--warmup 3] [--style quote|compose] [--smoke]

The stack is bench/ttft.py's (`ttft_stack`: embedded PostgreSQL+pgvector and Valkey, the bundled model
server, the demo company, Daphne with the production settings). That Daphne traces (HELPDESK_TRACING=1,
no OTLP endpoint: the spans go nowhere but the turn recorder, which stores each reply's waterfall, as in
production without a collector). A second Daphne on the same database and Redis runs with
HELPDESK_TRACING=0: no provider, no instrumentation, our spans are no-ops. That is the floor.

Each round asks one question of each, A B then B A in turn (CONTRACTS §4), each as a new visitor over the
real widget socket (bench/ttft.py's `widget_ask`), after `--warmup` unscored rounds. The answer cache is
made cold before every question (the knowledge epoch bumped, as publishing does), so both sides run the
whole pipeline. Measured: complete (message frame sent -> the final event, at the client) and the desk's
own `total_ms` (receipt -> reply stored); p50/p95 per side and the ratio traced / untraced of the p50s and
of the paired rounds' median. `--style quote` (default) keeps the model out: the pipeline's own work is
what tracing adds to; `compose` adds the model's time to both sides.

Prints a table, then a last line of JSON with every figure and the configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stats import p50_p95, package_version  # noqa: E402
from bench.ttft import (  # noqa: E402
    Stack,
    _wait_healthy,
    answer_style_set,
    questions_round_robin,
    ttft_stack,
    widget_ask,
)
from helpdesk.stack import embedded  # noqa: E402
from helpdesk.stack.procs import Child  # noqa: E402


def untraced_daphne(stack: Stack) -> tuple[Stack, Child]:
    """A second Daphne on the same database and Redis, with tracing off."""
    port = embedded.free_port()
    env = {**stack.daphne_env, "HELPDESK_TRACING": "0"}
    child = Child(
        "daphne-untraced",
        embedded.web_argv(host="127.0.0.1", port=port),
        log_path=stack.tmp / "log" / "daphne-untraced.log",
        env=env,
        cwd=ROOT,
    )
    child.start()
    url = f"http://127.0.0.1:{port}"
    from apps.accounts.models import Tenant
    from apps.accounts.services import allowed_origin_add

    # The widget client sends its desk's URL as the Origin: the demo company must allow this one too.
    allowed_origin_add(tenant=Tenant.objects.get(widget_key=stack.widget_key), origin=url)
    _wait_healthy(url, child, timeout=240, token=env["METRICS_TOKEN"])
    return dataclasses.replace(stack, web_url=url), child


def cache_cold(stack: Stack) -> None:
    from apps.accounts.models import Tenant
    from apps.accounts.services import tenant_knowledge_epoch_bump

    tenant_knowledge_epoch_bump(tenant_id=Tenant.objects.get(widget_key=stack.widget_key).id)


def stored(message_id: str, *, traced: bool) -> tuple[float | None, int]:
    """The desk's total_ms for the reply, and how many spans it stored (none when untraced)."""
    from apps.conversations.models import AssistantTrace, Message

    message = Message.objects.filter(id=message_id).first()
    total = (message.timings or {}).get("total_ms") if message else None
    deadline = time.monotonic() + (5 if traced else 0)
    while True:  # spans are stored just after the reply's final event
        row = AssistantTrace.objects.filter(message_id=message_id).values("trace_id", "spans").first()
        if (row and row["trace_id"]) or time.monotonic() >= deadline:
            return total, len(row["spans"]) if row else 0
        time.sleep(0.05)


def one(stack: Stack, text: str, *, traced: bool) -> dict[str, Any]:
    cache_cold(stack)
    reply = asyncio.run(widget_ask(stack, text))
    if reply.status != "complete":
        raise RuntimeError(f"a reply ended {reply.status!r} at {stack.web_url}")
    total, spans = stored(reply.message_id, traced=traced)
    return {"complete_ms": reply.complete_ms, "total_ms": total, "spans": spans}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--style", choices=("quote", "compose"), default="quote")
    parser.add_argument("--smoke", action="store_true", help="3 rounds after 1 warm-up")
    args = parser.parse_args()
    rounds, warmup = (3, 1) if args.smoke else (args.rounds, args.warmup)
    os.environ["HELPDESK_TRACING"] = "1"
    os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    questions = [row["question"] for row in questions_round_robin()]
    results: dict[str, list[dict[str, Any]]] = {"traced": [], "untraced": []}
    with ttft_stack() as traced:
        answer_style_set(traced, args.style)
        untraced, child = untraced_daphne(traced)
        try:
            sides = {"traced": traced, "untraced": untraced}
            for n in range(warmup + rounds):
                text = questions[n % len(questions)]
                order = ("traced", "untraced") if n % 2 == 0 else ("untraced", "traced")
                for side in order:
                    measured = one(sides[side], text, traced=side == "traced")
                    if n >= warmup:
                        results[side].append(measured)
        finally:
            child.stop()

    def column(side: str, key: str) -> list[float]:
        return [float(r[key]) for r in results[side] if r[key] is not None]

    summary: dict[str, Any] = {}
    for key in ("complete_ms", "total_ms"):
        on, off = column("traced", key), column("untraced", key)
        paired = [a / b for a, b in zip(on, off, strict=False) if b]
        summary[key] = {
            "traced": p50_p95(on),
            "untraced": p50_p95(off),
            "ratio_p50": round(statistics.median(on) / statistics.median(off), 3) if on and off else None,
            "ratio_paired_median": round(statistics.median(paired), 3) if paired else None,
        }
    spans = [r["spans"] for r in results["traced"]]
    print(f"tracing cost per turn ({args.style}, {rounds} rounds after {warmup} warm-up, interleaved)")
    print(f"{'':<14}{'traced p50':>12}{'p95':>10}{'untraced p50':>14}{'p95':>10}{'ratio':>8}")
    for key, row in summary.items():
        t, u = row["traced"], row["untraced"]
        print(f"{key:<14}{t['p50']:>12}{t['p95']:>10}{u['p50']:>14}{u['p95']:>10}{row['ratio_p50']:>8}")
    print(f"spans stored per traced reply: median {statistics.median(spans) if spans else 0}")
    print(
        json.dumps(
            {
                "bench": "tracing",
                "style": args.style,
                "rounds": rounds,
                "warmup": warmup,
                **summary,
                "spans_per_reply_median": statistics.median(spans) if spans else 0,
                "opentelemetry_sdk": package_version("opentelemetry-sdk"),
            }
        )
    )


if __name__ == "__main__":
    main()
