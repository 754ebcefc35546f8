"""The added latency of a tool round trip (enqueue to result), next to a Redis round trip in the same run.

    .venv/bin/python bench/tool_roundtrip.py [--rounds 200] [--warmup 20] [--pool prefork]
                                             [--concurrency 2] [--no-conversation] [--smoke]

Starts its own PostgreSQL+pgvector and Valkey in a temporary directory (bench/answer_quality.py's
`embedded_django`: the start-up code of `make run`), migrates, and sets up one company with the demo
business system: `tool_connection_configure(adapter="demo")`, `order_lookup` enabled, the demo telecom
loaded (`demo_telco_load`), and one conversation the runs belong to, so the timeline listener does the
work it does in production (an event per state change; `--no-conversation` leaves it out). Then it starts
a real Celery worker consuming the "tools" queue, as `make run` starts it (`python -m celery -A helpdesk
worker --queues tools --concurrency 2`, prefork pool; `--pool`/`--concurrency` change that), with the
production settings module and the same DATABASE_URL and REDIS_URL, and waits until it answers a ping.

Each round, after a warm-up, runs three measurements, interleaved A B C A B C (CONTRACTS §4), each after
SETTLE_SECONDS of idle so the previous one's trailing work (the worker's ack, result and timeline event)
is not charged to the next:

  A  ours   what the assistant does for a read tool (apps/conversations/toolcalls.py): the model's call
            `order_lookup {"order_number": "NM-100234"}` for verified customer cust-1001, with a fresh
            message_ref (the idempotency key is derived from the call), goes through
            `database_sync_to_async(tool_call_propose)`, which stores the run and, on commit, sends
            `apps.tools.tasks.tool_run_execute` to the "tools" queue; then `toolcalls._await_result`, the
            assistant's own waiter (BLPOP on the run's wake-up list, then the run re-read from the
            database). Measured from the moment the task message is published (Celery's
            `after_task_publish` signal, in this process) to the moment the waiter returns the finished
            run: broker, worker pick-up, claim, the demo adapter's indexed query, the finishing update,
            the wake-up LPUSH and the re-read. Every run must come back `done` with a result.
            Also reported: propose -> result (the call's validation and insert included), and from the
            run's own timestamps (same host clock) where the time goes.
  B  floor  a Redis PING on the same Valkey, with the same asyncio client the waiter uses (the floor
            CONTRACTS §4 names for this path).
  C  floor  an LPUSH + BLPOP pair on that client: the wake-up mechanism alone, for reference.

Database connections are as in production: DATABASE_CONN_MAX_AGE (default 0) applies to this process
(each `database_sync_to_async` call opens one, as in Daphne) and to the worker.

Reported: p50/p95 of A, B and C, the ratios A/B (headline) and A/C with a 90% bootstrap interval over
rounds, the added milliseconds (A p50 - B p50), the breakdown, and the configuration (worker pool and
concurrency, broker, result backend, settings, versions, n). Prints a table, then a last line of JSON
(keys `bench`, `ratio_p50`, `ratio_p95`, `added_ms_p50`, `tool_ms`, `ping_ms`, ..., `config`).

`--smoke`: 2 warm-up rounds and 10 measured, for CI (tests/bench/test_tool_roundtrip_smoke.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.answer_quality import embedded_django  # noqa: E402
from bench.stats import bootstrap_ci, p50_p95, package_version, ratio  # noqa: E402
from helpdesk.stack import embedded  # noqa: E402
from helpdesk.stack.procs import Child  # noqa: E402

WORKER_SETTINGS = "helpdesk.settings.production"
TOOL = "order_lookup"
CUSTOMER, ORDER = "cust-1001", "NM-100234"
SETTLE_SECONDS = 0.1  # idle before every measurement, all sides
RUN_TIMEOUT_SECONDS = 30.0  # one round trip longer than this fails the benchmark (a stuck worker)
FLOOR_KEY = "hd:bench:toolroundtrip:floor"


# ---- statistics --------------------------------------------------------------------------------------


# ---- the stack ---------------------------------------------------------------------------------------


@dataclass
class Setup:
    tenant: Any  # apps.accounts.models.Tenant
    conversation_id: uuid.UUID | None  # None: --no-conversation
    worker: Child
    worker_name: str
    worker_argv: list[str]
    tmp: Path


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every `finally`, which stops the children


@contextmanager
def tool_stack(pool: str, concurrency: int, *, conversation: bool) -> Iterator[Setup]:
    with embedded_django("hdtr-") as tmp:
        from django.conf import settings

        from apps.accounts.services import tenant_create
        from apps.conversations.services import conversation_start
        from apps.telco.services import demo_telco_load
        from apps.tools.services import tool_configure, tool_connection_configure
        from helpdesk.celery import app as celery_app

        tenant = tenant_create(slug="bench-tools", name="Bench Tools")
        tool_connection_configure(tenant=tenant, adapter="demo")
        tool_configure(tenant=tenant, name=TOOL, enabled=True)
        demo_telco_load(company=tenant.id)
        conversation_id = conversation_start(tenant=tenant).id if conversation else None

        worker_name = f"bench-tools-{os.getpid()}@{socket.gethostname()}"
        worker_env = {
            **os.environ,  # DATABASE_URL, REDIS_URL, HELPDESK_VAR_DIR, LOG_LEVEL of embedded_django
            "DJANGO_SETTINGS_MODULE": WORKER_SETTINGS,
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(48),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LLM_BASE_URL": settings.LLM_BASE_URL,  # required by the production settings; never called
            "LLM_API_KEY": settings.LLM_API_KEY,
            "METRICS_TOKEN": secrets.token_urlsafe(32),  # required by the production settings; never used
            "PYTHONUNBUFFERED": "1",
        }
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "helpdesk",
            "worker",
            "--loglevel",
            "INFO",
            "--queues",
            "tools",
            "--pool",
            pool,
            "--concurrency",
            str(concurrency),
            "--hostname",
            worker_name,
        ]
        worker = Child(
            "celery-tools",
            argv,
            log_path=tmp / "log" / "celery-tools.log",
            env=worker_env,
            cwd=ROOT,
            stop_timeout=30,
        )
        worker.start()
        try:

            def ping() -> None:
                if not celery_app.control.ping(destination=[worker_name], timeout=1.0):
                    raise embedded.NotReady("no pong")

            try:
                embedded.wait_until(ping, timeout=120, what="celery tools worker", child=worker)
            except embedded.NotReady as exc:
                raise SystemExit(f"the worker did not come up: {exc}\n{worker.log_tail(40)}") from None
            yield Setup(
                tenant=tenant,
                conversation_id=conversation_id,
                worker=worker,
                worker_name=worker_name,
                worker_argv=argv,
                tmp=tmp,
            )
        finally:
            worker.stop()
            from django.db import connections

            connections.close_all()


# ---- the measurements --------------------------------------------------------------------------------


@dataclass
class Round:
    tool_ms: float  # task published -> finished run re-read by the waiter
    propose_ms: float  # tool_call_propose called -> finished run re-read
    ping_ms: float
    lpush_blpop_ms: float
    publish_to_claim_ms: float  # -> the worker's claim (run.started_at)
    claim_to_finish_ms: float  # claim -> the finishing update (run.finished_at)
    finish_to_result_ms: float  # -> the waiter returned the re-read run
    adapter_ms: int | None  # run.duration_ms, as the worker recorded it


class Publishes:
    """Times of `apps.tools.tasks.tool_run_execute` messages published by this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._times: list[tuple[float, float]] = []

    def record(self, sender: object = None, **kwargs: object) -> None:
        if sender == "apps.tools.tasks.tool_run_execute":
            stamp = (time.perf_counter(), time.time())
            with self._lock:
                self._times.append(stamp)

    def take(self) -> list[tuple[float, float]]:
        with self._lock:
            taken, self._times = self._times, []
        return taken


async def tool_round_trip(setup: Setup, publishes: Publishes) -> dict[str, Any]:
    from channels.db import database_sync_to_async

    from apps.conversations.toolcalls import _await_result
    from apps.tools.models import RunStatus
    from apps.tools.services import ToolCallRequest, tool_call_propose

    publishes.take()
    message_ref = uuid.uuid4()
    started = time.perf_counter()
    run = await database_sync_to_async(tool_call_propose)(
        tenant=setup.tenant,
        call=ToolCallRequest(
            call_id=f"call_{message_ref.hex[:12]}", name=TOOL, arguments=json.dumps({"order_number": ORDER})
        ),
        index=0,
        customer=CUSTOMER,
        conversation_ref=setup.conversation_id,
        message_ref=message_ref,
    )
    if run.status != RunStatus.QUEUED:
        raise SystemExit(f"the call was not queued: {run.status} {run.error_code} {run.error_message}")
    final = await asyncio.wait_for(_await_result(run), timeout=RUN_TIMEOUT_SECONDS)
    ended = time.perf_counter()
    sent = publishes.take()
    if len(sent) != 1:
        raise SystemExit(f"expected one task message for run {run.id}, saw {len(sent)}")
    if final.status != RunStatus.DONE or not final.result or not final.started_at or not final.finished_at:
        raise SystemExit(
            f"run {run.id} ended {final.status} ({final.error_code}: {final.error_message}), not done; "
            f"deliver_later={final.deliver_later}\n{setup.worker.log_tail(40)}"
        )
    published, published_wall = sent[0]
    ended_wall = published_wall + (ended - published)
    claimed = final.started_at.timestamp()
    finished = final.finished_at.timestamp()
    return {
        "tool_ms": (ended - published) * 1000,
        "propose_ms": (ended - started) * 1000,
        "publish_to_claim_ms": (claimed - published_wall) * 1000,
        "claim_to_finish_ms": (finished - claimed) * 1000,
        "finish_to_result_ms": (ended_wall - finished) * 1000,
        "adapter_ms": final.duration_ms,
    }


async def ping_round_trip() -> float:
    from apps.core.redis import astate_redis

    client = astate_redis()
    started = time.perf_counter()
    await client.ping()
    return (time.perf_counter() - started) * 1000


async def lpush_blpop_round_trip() -> float:
    from apps.core.redis import astate_redis

    client = astate_redis()
    started = time.perf_counter()
    await client.lpush(FLOOR_KEY, "done")
    got = await client.blpop([FLOOR_KEY], timeout=1)
    elapsed = (time.perf_counter() - started) * 1000
    if got is None:
        raise SystemExit("LPUSH + BLPOP: the pushed value was not popped")
    return elapsed


async def measure(setup: Setup, warmup: int, rounds: int) -> list[Round]:
    from celery.signals import after_task_publish

    publishes = Publishes()
    after_task_publish.connect(publishes.record, weak=False)
    measured: list[Round] = []
    try:
        for index in range(warmup + rounds):
            await asyncio.sleep(SETTLE_SECONDS)
            tool = await tool_round_trip(setup, publishes)
            await asyncio.sleep(SETTLE_SECONDS)
            ping = await ping_round_trip()
            await asyncio.sleep(SETTLE_SECONDS)
            pair = await lpush_blpop_round_trip()
            if index >= warmup:
                measured.append(Round(ping_ms=ping, lpush_blpop_ms=pair, **tool))
            if (index + 1) % 50 == 0:
                print(f"{index + 1}/{warmup + rounds} rounds", file=sys.stderr)
    finally:
        after_task_publish.disconnect(publishes.record)
        from apps.core.redis import astate_redis

        await astate_redis().aclose()
    return measured


# ---- configuration and report ------------------------------------------------------------------------


def _redis_server() -> str:
    from apps.core.redis import state_redis

    info = state_redis().info("server")
    if "valkey_version" in info:
        return f"valkey {info['valkey_version']}"
    return f"redis {info.get('redis_version', '?')}"


def _postgres_server() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        return f"postgresql {cursor.fetchone()[0]}"


def _without_host(url: str) -> str:
    """redis://127.0.0.1:PORT/1 -> redis://127.0.0.1/1: the port is random per run."""
    scheme, _, rest = url.partition("://")
    host_port, _, path = rest.partition("/")
    return f"{scheme}://{host_port.rsplit(':', 1)[0]}/{path}"


def configuration(
    setup: Setup, args: argparse.Namespace, ready_s: float, load_before: float
) -> dict[str, Any]:
    from django.conf import settings

    return {
        "tool": TOOL,
        "adapter": "demo",
        "arguments": {"order_number": ORDER},
        "customer": CUSTOMER,
        "conversation": setup.conversation_id is not None,
        "worker_pool": args.pool,
        "worker_concurrency": args.concurrency,
        "worker_queue": "tools",
        "worker_settings": WORKER_SETTINGS,
        "worker_argv": setup.worker_argv[1:],
        "broker": _without_host(settings.CELERY_BROKER_URL),
        "result_backend": _without_host(settings.CELERY_RESULT_BACKEND),
        "prefetch_multiplier": settings.CELERY_WORKER_PREFETCH_MULTIPLIER,
        "acks_late": settings.CELERY_TASK_ACKS_LATE,
        "database_conn_max_age": settings.DATABASES["default"].get("CONN_MAX_AGE", 0),
        "tools_wait_seconds": float(settings.TOOLS_WAIT_SECONDS),
        "redis_server": _redis_server(),
        "postgres_server": _postgres_server(),
        "celery": package_version("celery"),
        "kombu": package_version("kombu"),
        "redis_py": package_version("redis"),
        "python": platform.python_version(),
        "rounds": args.rounds,
        "warmup": args.warmup,
        "settle_s": SETTLE_SECONDS,
        "cpus": os.cpu_count(),
        "smoke": args.smoke,
        "stack_ready_s": round(ready_s, 1),
        "load_average_1min": {"before": load_before, "after": round(os.getloadavg()[0], 2)},
    }


def report(rounds: list[Round], config: dict[str, Any]) -> None:
    def column(name: str) -> list[float]:
        return [float(v) for r in rounds if (v := getattr(r, name)) is not None]

    tool, ping, pair = column("tool_ms"), column("ping_ms"), column("lpush_blpop_ms")
    figures = {
        "tool": p50_p95(tool),
        "propose": p50_p95(column("propose_ms")),
        "ping": p50_p95(ping),
        "lpush_blpop": p50_p95(pair),
    }
    ratios = {
        "ping_p50": ratio(figures["tool"]["p50"], figures["ping"]["p50"]),
        "ping_p95": ratio(figures["tool"]["p95"], figures["ping"]["p95"]),
        "lpush_blpop_p50": ratio(figures["tool"]["p50"], figures["lpush_blpop"]["p50"]),
        "lpush_blpop_p95": ratio(figures["tool"]["p95"], figures["lpush_blpop"]["p95"]),
    }
    ci90 = {"ping_p50": bootstrap_ci(tool, ping), "lpush_blpop_p50": bootstrap_ci(tool, pair)}
    added = {
        "ping_p50": round(figures["tool"]["p50"] - figures["ping"]["p50"], 2),
        "lpush_blpop_p50": round(figures["tool"]["p50"] - figures["lpush_blpop"]["p50"], 2),
    }
    breakdown = {
        "task published -> worker claimed the run": p50_p95(column("publish_to_claim_ms")),
        "claimed -> run finished (adapter, updates)": p50_p95(column("claim_to_finish_ms")),
        "  of which the adapter call (duration_ms)": p50_p95(column("adapter_ms")),
        "finished -> waiter woke and re-read the run": p50_p95(column("finish_to_result_ms")),
    }

    def cell(value: float | None, width: int = 10, digits: int = 2) -> str:
        return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"

    print(
        f"Tool round trip ({config['tool']}, {config['adapter']} adapter) vs Redis, {len(rounds)} rounds "
        f"A B C after {config['warmup']} warm-up; worker: {config['worker_pool']} pool, concurrency "
        f"{config['worker_concurrency']}, queue {config['worker_queue']}; broker {config['broker']} "
        f"({config['redis_server']}), {config['postgres_server']}, CONN_MAX_AGE "
        f"{config['database_conn_max_age']}, {config['cpus']} CPUs"
    )
    print()
    print(f"{'measure (ms)':<46}{'p50':>10}{'p95':>10}{'ratio p50':>11}{'ratio p95':>11}{'added p50':>11}")
    print(
        f"{'A  tool: task sent -> result re-read':<46}{cell(figures['tool']['p50'])}"
        f"{cell(figures['tool']['p95'])}{cell(None, 11)}{cell(None, 11)}{cell(None, 11)}"
    )
    print(
        f"{'B  floor: Redis PING':<46}{cell(figures['ping']['p50'])}{cell(figures['ping']['p95'])}"
        f"{cell(ratios['ping_p50'], 11)}{cell(ratios['ping_p95'], 11)}{cell(added['ping_p50'], 11)}"
    )
    print(
        f"{'C  reference: LPUSH + BLPOP':<46}{cell(figures['lpush_blpop']['p50'])}"
        f"{cell(figures['lpush_blpop']['p95'])}{cell(ratios['lpush_blpop_p50'], 11)}"
        f"{cell(ratios['lpush_blpop_p95'], 11)}{cell(added['lpush_blpop_p50'], 11)}"
    )
    print(
        f"{'   tool: propose -> result (validation, insert)':<46}{cell(figures['propose']['p50'])}"
        f"{cell(figures['propose']['p95'])}"
    )
    print()
    print(
        f"ratio = A / floor; added = A p50 - floor p50. 90% bootstrap interval of A/B p50: "
        f"{ci90['ping_p50'][0]}-{ci90['ping_p50'][1]}, of A/C p50: "
        f"{ci90['lpush_blpop_p50'][0]}-{ci90['lpush_blpop_p50'][1]}"
    )
    print()
    print(f"{'where A spends it (ms, run timestamps)':<46}{'p50':>10}{'p95':>10}")
    for label, row in breakdown.items():
        print(f"{label:<46}{cell(row['p50'])}{cell(row['p95'])}")
    print()
    print(
        json.dumps(
            {
                "bench": "tool_roundtrip",
                "ratio_p50": ratios["ping_p50"],
                "ratio_p95": ratios["ping_p95"],
                "added_ms_p50": added["ping_p50"],
                "tool_ms": figures["tool"],
                "ping_ms": figures["ping"],
                "lpush_blpop_ms": figures["lpush_blpop"],
                "propose_to_result_ms": figures["propose"],
                "ratios": ratios,
                "ratio_ci90": ci90,
                "added_ms": added,
                "breakdown_ms": breakdown,
                "rounds": [
                    {
                        "tool_ms": round(r.tool_ms, 3),
                        "propose_ms": round(r.propose_ms, 3),
                        "ping_ms": round(r.ping_ms, 3),
                        "lpush_blpop_ms": round(r.lpush_blpop_ms, 3),
                        "publish_to_claim_ms": round(r.publish_to_claim_ms, 3),
                        "claim_to_finish_ms": round(r.claim_to_finish_ms, 3),
                        "finish_to_result_ms": round(r.finish_to_result_ms, 3),
                        "adapter_ms": r.adapter_ms,
                    }
                    for r in rounds
                ],
                "config": config,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=200, help="measured A B C rounds")
    parser.add_argument("--warmup", type=int, default=20, help="rounds run first and discarded")
    parser.add_argument("--pool", default="prefork", help="the worker's pool (make run: prefork)")
    parser.add_argument("--concurrency", type=int, default=2, help="the worker's concurrency (make run: 2)")
    parser.add_argument(
        "--no-conversation",
        action="store_true",
        help="runs carry no conversation_ref, so no timeline listener runs (shows the timeline's share)",
    )
    parser.add_argument("--smoke", action="store_true", help="CI size: 2 warm-up rounds, 10 measured")
    args = parser.parse_args()
    if args.smoke:
        args.warmup, args.rounds = 2, 10
    if args.rounds < 1 or args.warmup < 0:
        parser.error("--rounds must be at least 1 and --warmup at least 0")
    signal.signal(signal.SIGTERM, _raise_exit)
    started = time.monotonic()

    with tool_stack(args.pool, args.concurrency, conversation=not args.no_conversation) as setup:
        ready_s = time.monotonic() - started
        print(
            f"stack and worker ready in {ready_s:.0f}s; {args.warmup} warm-up + {args.rounds} rounds",
            file=sys.stderr,
        )
        load_before = round(os.getloadavg()[0], 2)
        rounds = asyncio.run(measure(setup, args.warmup, args.rounds))
        config = configuration(setup, args, ready_s, load_before)
    report(rounds, config)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted: the worker, PostgreSQL and Valkey were stopped", file=sys.stderr)
        sys.exit(130)
