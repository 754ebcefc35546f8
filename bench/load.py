"""Hundreds of idle widget sockets and tens of customers asking at once, next to one lone customer.

    .venv/bin/python bench/load.py [--sockets 300] [--askers 20] [--lone 5] [--answer-style S] [--smoke]
    .venv/bin/python bench/load.py --url http://127.0.0.1:8000 [--redis-url redis://127.0.0.1:6380]

By default it starts its own stack on loopback, bench/ttft.py's `ttft_stack` (the start-up code of
`make run`: PostgreSQL+pgvector, Valkey, the bundled model behind the model server `make run` picks, with
its parallel slots, and Daphne serving the production settings; the demo company loaded by
`manage.py demo_load`). With `--url` it targets a running `make run` instead: the demo company's public
widget key is read from its `/demo/` page (as the embedded widget gets it), Daphne is the process
listening on the URL's port, and Valkey is `--redis-url` (else REDIS_URL, else `make run`'s own).

Everything a visitor does is what the widget does, over HTTP and the websocket (bench/crowd.py,
bench/ttft.py's `widget_ask`). In order, interleaved A B A (CONTRACTS §4):

  warm-up   one question, not measured;
  A  lone   `--lone` questions, one at a time, each by a new visitor;
  B  load   `--sockets` idle visitors open (session, socket, `hello`, then only the widget's `ping` every
            20 s; spread over loopback addresses, bench/crowd.py), then `--askers` new visitors each ask
            one question at the same moment and read the streamed reply to its final event, while the
            idle sockets stay open; then the idle sockets close;
  A  lone   `--lone` more questions, one at a time.

Askers and lone askers take the same code path (bench/answers.py's `ask_together`: sessions first, then
the sockets), so the ratio is the load's. First content: the `message` frame sent -> the first
`assistant.delta`; complete: -> the final event. An error: an exception, an error frame, or a reply that
did not end `complete`. Questions are the answerable ones of bench/data/questions.jsonl, round-robin over
the demo policies, each asked once (the answer cache could serve a repeat); on the own stack, answers the
cache served are counted from the stored trace.

What the server holds, sampled before the idle sockets open, once they are open, after the askers, and
after they closed (a few seconds' settle each time): Daphne's RSS (psutil, with its children), its open
file descriptors, and Valkey's `CLIENT LIST` (all clients but this bench's own; and those whose socket is
Daphne's). Per idle socket: the RSS added by opening them over their number; after closing: how much came
back. Reported as measured, good or bad.

Prints tables, then a last line of JSON (keys `bench`, `memory`, `redis_clients`, `latency_ms`, `ratios`,
`errors`, `idle`, `config`). `--smoke`: 20 sockets, 3 askers, 2 lone questions each side.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import resource
import signal
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.answers import ask_together, read_record, style_set  # noqa: E402
from bench.crowd import (  # noqa: E402
    PING_SECONDS,
    VISITORS_PER_ADDRESS,
    CrowdFigures,
    IdleCrowd,
    Sample,
    sample,
    server_pid_listening,
)
from bench.stats import p50_p95, package_version, ratio  # noqa: E402
from bench.ttft import DAPHNE_SETTINGS, Reply, Stack, _raise_exit, llm_config, questions_round_robin  # noqa: E402

DEFAULT_SOCKETS, DEFAULT_ASKERS, DEFAULT_LONE = 300, 20, 5
SMOKE_SOCKETS, SMOKE_ASKERS, SMOKE_LONE = 20, 3, 2
SETTLE_SECONDS = 3.0  # before each sample: handshakes and closes finish, the server's buffers go
STYLES = ("configured", "quote", "compose")
CLIENT_MARKS = ("ack", "looking_up")
SERVER_TIMINGS = ("ttft_ms", "embed_ms", "retrieval_ms", "total_ms")
Outcome = tuple[Reply | None, str]


# ---- targets -----------------------------------------------------------------------------------------


@contextmanager
def own_stack(answer_style: str) -> Iterator[tuple[Stack, str, dict[str, Any]]]:
    from bench.ttft import ttft_stack

    with ttft_stack() as stack:
        from apps.accounts.models import Tenant
        from apps.llm.profiles import style_for

        if answer_style != "configured":
            style_set(stack, answer_style)
        tenant = Tenant.objects.get(widget_key=stack.widget_key)
        effective, why = style_for(tenant)
        config = {
            **llm_config(stack),
            "server": f"own stack: Daphne {stack.web_url} ({DAPHNE_SETTINGS})",
            "answer_style": {"setting": str(tenant.answer_style), "effective": effective, "why": why},
            "database_conn_max_age": int(stack.daphne_env.get("DATABASE_CONN_MAX_AGE", "0")),
        }
        yield stack, os.environ["REDIS_URL"], config


@contextmanager
def running_stack(url: str, redis_url: str | None) -> Iterator[tuple[Stack, str, dict[str, Any]]]:
    """A running `make run` (or any desk with the demo company) on this machine."""
    from helpdesk.env import local_stack

    url = url.rstrip("/")
    with urllib.request.urlopen(f"{url}/demo/", timeout=30) as response:  # noqa: S310 (loopback)
        page = response.read().decode()
    key = re.search(r'data-widget-key="([^"]+)"', page)
    if key is None:
        raise SystemExit(f"{url}/demo/ carries no widget key: is the demo company loaded?")
    local = local_stack()
    redis_url = redis_url or os.environ.get("REDIS_URL") or local.redis_url
    llm_url = os.environ.get("LLM_BASE_URL") or local.llm_base_url
    pid = server_pid_listening(urlsplit(url).port or 80)
    stack = Stack(
        web_url=url,
        llm_base_url=llm_url,
        llm_log=Path(os.devnull),
        widget_key=key.group(1),
        llm_argv=[],
        llm_server="",
        model_alias="",
        daphne_env={},
        children=[],
        tmp=Path(os.devnull),
        llm_pid=0,
        daphne_pid=pid,
        redis_port=urlsplit(redis_url).port or 6379,
    )
    config = {
        "server": f"running desk {url} (pid {pid})",
        "model": _served_models(llm_url),
        "answer_style": {"setting": "the server's (not readable over HTTP)"},
    }
    yield stack, redis_url, config


def _served_models(llm_url: str) -> str:
    try:
        with urllib.request.urlopen(f"{llm_url.rstrip('/')}/models", timeout=5) as response:  # noqa: S310
            return ", ".join(str(m.get("id")) for m in json.load(response).get("data", [])) or "?"
    except (OSError, ValueError):
        return f"? ({llm_url} did not list its models)"


# ---- the run -----------------------------------------------------------------------------------------


def open_files_limit(wanted: int) -> dict[str, Any]:
    """Raises this process's open-file limit (its children, Daphne on the own stack, inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    raised = False
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
        soft, raised = new_soft, True
    if soft != resource.RLIM_INFINITY and soft < wanted:
        print(f"the open-file limit ({soft}, hard {hard}) is below the {wanted} wanted", file=sys.stderr)
    return {"soft": soft, "hard": hard, "wanted": wanted, "raised": raised}


def lone(stack: Stack, questions: list[str], label: str) -> list[Outcome]:
    outcomes = []
    for n, text in enumerate(questions, start=1):
        outcomes += ask_together(stack, [text])
        reply = outcomes[-1][0]
        print(
            f"  {label} {n}/{len(questions)}: {_status(outcomes[-1])} {_ms(reply)}",
            file=sys.stderr,
            flush=True,
        )
    return outcomes


def settled_sample(stack: Stack, redis_url: str) -> Sample:
    time.sleep(SETTLE_SECONDS)
    return sample(pid=stack.daphne_pid, redis_url=redis_url)


def run(stack: Stack, redis_url: str, sockets: int, askers: int, lone_n: int) -> dict[str, Any]:
    pool = [q["question"] for q in questions_round_robin()]
    texts = list(itertools.islice(itertools.cycle(pool), 1 + 2 * lone_n + askers))
    warm, before_qs = texts[0], texts[1 : 1 + lone_n]
    asker_qs, after_qs = texts[1 + lone_n : 1 + lone_n + askers], texts[1 + lone_n + askers :]
    lone(stack, [warm], "warm-up")
    lone_before = lone(stack, before_qs, "lone before")

    samples = {"before": settled_sample(stack, redis_url)}
    crowd = IdleCrowd(web_url=stack.web_url, widget_key=stack.widget_key, count=sockets)
    try:
        opened = crowd.open()
        print(
            f"  idle: {opened.opened}/{sockets} open in {opened.open_s} s, "
            f"{len(opened.open_failures)} failed",
            file=sys.stderr,
            flush=True,
        )
        samples["idle_open"] = settled_sample(stack, redis_url)
        started = time.perf_counter()
        loaded = ask_together(stack, asker_qs)
        askers_wall_s = round(time.perf_counter() - started, 2)
        print(f"  askers: {askers} at once in {askers_wall_s} s", file=sys.stderr, flush=True)
        samples["after_askers"] = settled_sample(stack, redis_url)
    finally:
        crowd_figures = crowd.close()
    samples["after_close"] = settled_sample(stack, redis_url)
    lone_after = lone(stack, after_qs, "lone after")
    samples["end"] = settled_sample(stack, redis_url)
    return {
        "samples": samples,
        "crowd": crowd_figures,
        "outcomes": {"lone_before": lone_before, "askers": loaded, "lone_after": lone_after},
        "askers_wall_s": askers_wall_s,
        "questions": len(set(texts)),
        "question_repeats": len(texts) - len(set(texts)),
    }


# ---- figures -----------------------------------------------------------------------------------------


def _status(outcome: Outcome) -> str:
    reply, error = outcome
    return error or (reply.status if reply else "no reply")


def _ms(reply: Reply | None) -> str:
    if reply is None or reply.complete_ms is None:
        return ""
    first = f"{reply.ttft_ms:.0f}" if reply.ttft_ms is not None else "-"
    return f"first content {first} ms, complete {reply.complete_ms:.0f} ms"


def latency(outcomes: list[Outcome]) -> dict[str, Any]:
    replies = [r for r, _ in outcomes if r is not None]
    errors = [_status(o) for o in outcomes if _status(o) != "complete"]
    return {
        "first_content": p50_p95(
            [r.ttft_ms for r in replies if r.status == "complete" and r.ttft_ms is not None]
        ),
        "complete": p50_p95(
            [r.complete_ms for r in replies if r.status == "complete" and r.complete_ms is not None]
        ),
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "composed": sum(1 for r in replies if "composing" in r.marks_ms),  # the model was called
        "n": len(outcomes),
    }


def where_time_went(outcomes: list[Outcome], own: bool) -> dict[str, Any]:
    """The client's marks after t0 (the `ack`: rate limits, Presidio, the stored message; `looking_up`)
    and, on the own stack, what the desk recorded for each reply (Message.timings: receipt -> first
    content, embedding, retrieval, total) and whether the answer cache served it."""
    replies = [r for r, _ in outcomes if r is not None]
    out: dict[str, Any] = {
        f"client t0 -> {mark}": p50_p95([r.marks_ms[mark] for r in replies if mark in r.marks_ms], digits=1)
        for mark in CLIENT_MARKS
    }
    if own:
        records = [record for r in replies if r.message_id and (record := read_record(r.message_id))]
        for key in SERVER_TIMINGS:
            out[f"server {key}"] = p50_p95(
                [x["timings"][key] for x in records if key in x["timings"]], digits=1
            )
        out["answer_cache_hits"] = sum(
            str((x["retrieval"].get("cache") or {}).get("result", "")).startswith("hit") for x in records
        )
    return out


def figures(result: dict[str, Any], own: bool) -> dict[str, Any]:
    samples: dict[str, Sample] = result["samples"]
    crowd: CrowdFigures = result["crowd"]
    outcomes: dict[str, list[Outcome]] = result["outcomes"]
    lat = {name: latency(o) for name, o in outcomes.items()}
    lat["lone"] = latency(outcomes["lone_before"] + outcomes["lone_after"])
    ratios = {
        f"{measure}_{q}": ratio(lat["askers"][measure][q], lat["lone"][measure][q])
        for measure in ("first_content", "complete")
        for q in ("p50", "p95")
    }
    rss = {k: s.rss_mib for k, s in samples.items()}
    added = rss["idle_open"] - rss["before"]
    peak = max(rss["idle_open"], rss["after_askers"])
    memory = {
        "rss_mib": rss,
        "fds": {k: s.fds for k, s in samples.items()},
        "per_idle_socket_kib": round(added * 1024 / crowd.opened, 1) if crowd.opened else None,
        "retained_after_close_mib": round(rss["after_close"] - rss["before"], 2),
        # Of what the idle sockets and the askers added, the share the server gave back once they closed.
        "returned_share": round((peak - rss["after_close"]) / (peak - rss["before"]), 2)
        if peak > rss["before"]
        else None,
    }
    redis_clients: dict[str, Any] = {
        k: {
            "all": s.redis_clients,
            "server": s.redis_clients_server,
            "server_by_name": s.redis_server_by_name,
        }
        for k, s in samples.items()
    }
    before_clients = samples["before"].redis_clients
    redis_clients["per_idle_socket"] = (
        round((samples["idle_open"].redis_clients - before_clients) / crowd.opened, 2)
        if crowd.opened
        else None
    )
    redis_clients["retained_after_close"] = samples["after_close"].redis_clients - before_clients
    idle_errors = len(crowd.open_failures) + len(crowd.unexpected_closes) + len(crowd.error_frames)
    errors = {
        "askers": lat["askers"]["errors"],
        "lone": lat["lone"]["errors"],
        "idle_open_failures": len(crowd.open_failures),
        "idle_unexpected_closes": len(crowd.unexpected_closes),
        "idle_error_frames": len(crowd.error_frames),
        "total": lat["askers"]["errors"] + lat["lone"]["errors"] + idle_errors,
        "examples": sorted(set(crowd.open_failures + crowd.unexpected_closes + crowd.error_frames))[:5],
    }
    idle = {
        "opened": crowd.opened,
        "wanted": crowd.wanted,
        "open_s": crowd.open_s,
        "session_ms": p50_p95(crowd.session_ms, digits=1),
        "connect_hello_ms": p50_p95(crowd.connect_hello_ms, digits=1),
        "frames_received": dict(crowd.frames),
        "pings_sent": crowd.pings_sent,
        "extensions": crowd.extensions,
    }
    lone_all = outcomes["lone_before"] + outcomes["lone_after"]
    breakdown = {"lone": where_time_went(lone_all, own), "askers": where_time_went(outcomes["askers"], own)}
    return {
        "memory": memory,
        "redis_clients": redis_clients,
        "latency_ms": lat,
        "ratios": ratios,
        "errors": errors,
        "idle": idle,
        "breakdown_ms": breakdown,
        "askers_wall_s": result["askers_wall_s"],
    }


def _cell(value: Any, width: int = 10) -> str:
    if value is None:
        return f"{'-':>{width}}"
    return f"{value:>{width}.1f}" if isinstance(value, float) else f"{value:>{width}}"


def report(out: dict[str, Any], config: dict[str, Any]) -> None:
    style = config["answer_style"].get("effective", config["answer_style"]["setting"])
    print(
        f"Load on the widget path: {config['sockets']} idle sockets, {config['askers']} askers at once, "
        f"{config['lone']} lone questions before and after; answers {style}; model {config['model']}; "
        f"{config['server']}; {config['cpus']} CPUs"
    )
    print()
    points = ("before", "idle_open", "after_askers", "after_close", "end")
    print(f"{'what the server holds':<34}" + "".join(f"{p:>14}" for p in points))
    memory, clients = out["memory"], out["redis_clients"]
    print(f"{'Daphne RSS (MiB)':<34}" + "".join(_cell(memory["rss_mib"][p], 14) for p in points))
    print(f"{'Daphne open files':<34}" + "".join(_cell(memory["fds"][p], 14) for p in points))
    print(f"{'Valkey clients (all)':<34}" + "".join(_cell(clients[p]["all"], 14) for p in points))
    print(f"{'Valkey clients (Daphne)':<34}" + "".join(_cell(clients[p]["server"], 14) for p in points))
    print(
        f"per idle socket: {memory['per_idle_socket_kib']} KiB of Daphne's RSS and "
        f"{clients['per_idle_socket']} Valkey connections; after closing: "
        f"{memory['retained_after_close_mib']} MiB and {clients['retained_after_close']} Valkey connections "
        f"above before (RSS returned share {memory['returned_share']})"
    )
    for p in points:
        print(f"  Daphne's Valkey clients {p}: {clients[p]['server_by_name']}")
    print()
    lat = out["latency_ms"]
    print(
        f"{'latency (ms)':<24}{'first p50':>10}{'first p95':>10}{'done p50':>10}{'done p95':>10}"
        f"{'n':>5}{'errors':>8}"
    )
    for name in ("lone_before", "lone_after", "lone", "askers"):
        row = lat[name]
        print(
            f"{name:<24}{_cell(row['first_content']['p50'])}{_cell(row['first_content']['p95'])}"
            f"{_cell(row['complete']['p50'])}{_cell(row['complete']['p95'])}{row['n']:>5}{row['errors']:>8}"
        )
    r = out["ratios"]
    print(
        f"{'askers / lone':<24}{_cell(r['first_content_p50'])}{_cell(r['first_content_p95'])}"
        f"{_cell(r['complete_p50'])}{_cell(r['complete_p95'])}"
    )
    idle, errors = out["idle"], out["errors"]
    print()
    print(
        f"idle sockets: {idle['opened']}/{idle['wanted']} open in {idle['open_s']} s "
        f"(session p50 {idle['session_ms']['p50']} ms, connect + hello p50 "
        f"{idle['connect_hello_ms']['p50']} ms, p95 {idle['connect_hello_ms']['p95']} ms), "
        f"extensions {idle['extensions']}, "
        f"{idle['pings_sent']} pings sent, frames received {idle['frames_received']}"
    )
    examples = f" e.g. {'; '.join(errors['examples'])}" if errors["examples"] else ""
    print(
        f"errors: {errors['total']} (askers {errors['askers']}, lone {errors['lone']}, idle failed to open "
        f"{errors['idle_open_failures']}, closed by the server {errors['idle_unexpected_closes']}, "
        f"error frames {errors['idle_error_frames']}){examples}"
    )
    print()
    print(f"{'where the time goes (ms)':<34}{'lone p50':>10}{'askers p50':>12}{'askers p95':>12}")
    lone_rows, asker_rows = out["breakdown_ms"]["lone"], out["breakdown_ms"]["askers"]
    for label, row in asker_rows.items():
        if isinstance(row, dict):
            print(
                f"{label:<34}{_cell(lone_rows[label]['p50'])}{_cell(row['p50'], 12)}{_cell(row['p95'], 12)}"
            )
    print(
        f"answer cache hits: lone {lone_rows.get('answer_cache_hits', '?')}, askers "
        f"{asker_rows.get('answer_cache_hits', '?')}; replies that called the model: "
        f"lone {lat['lone']['composed']}, askers {lat['askers']['composed']}"
    )
    print(json.dumps({"bench": "load", **out, "config": config}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sockets", type=int, default=DEFAULT_SOCKETS, help="idle widget sockets")
    parser.add_argument("--askers", type=int, default=DEFAULT_ASKERS, help="visitors asking at once")
    parser.add_argument("--lone", type=int, default=DEFAULT_LONE, help="lone questions before, and after")
    parser.add_argument("--answer-style", choices=STYLES, default="configured", help="own stack only")
    parser.add_argument("--url", help="a running desk (make run) instead of an own stack")
    parser.add_argument("--redis-url", help="with --url: its Valkey (default REDIS_URL, else make run's)")
    parser.add_argument("--smoke", action="store_true", help="CI size: 20 sockets, 3 askers, 2 lone")
    args = parser.parse_args()
    if args.smoke:
        args.sockets, args.askers, args.lone = SMOKE_SOCKETS, SMOKE_ASKERS, SMOKE_LONE
    if min(args.sockets, args.askers, args.lone) < 1:
        parser.error("--sockets, --askers and --lone must be at least 1")
    if args.url and args.answer_style != "configured":
        parser.error("--answer-style changes the company's setting: only on the bench's own stack")
    signal.signal(signal.SIGTERM, _raise_exit)
    started = time.monotonic()
    fd_limit = open_files_limit(2 * (args.sockets + args.askers) + 512)  # client and server ends, and slack
    target = running_stack(args.url, args.redis_url) if args.url else own_stack(args.answer_style)
    with target as (stack, redis_url, target_config):
        ready_s = round(time.monotonic() - started, 1)
        print(f"stack ready in {ready_s:.0f}s", file=sys.stderr, flush=True)
        load_before = round(os.getloadavg()[0], 2)
        result = run(stack, redis_url, args.sockets, args.askers, args.lone)
        out = figures(result, own=not args.url)
    config = {
        "sockets": args.sockets,
        "askers": args.askers,
        "lone": args.lone,
        "questions": result["questions"],
        "question_repeats": result["question_repeats"],
        "question_source": "bench/data/questions.jsonl (answerable, round-robin over the demo policies)",
        "model": target_config.pop("model_file", None) or target_config.pop("model", "?"),
        **target_config,
        "visitors_per_address": VISITORS_PER_ADDRESS,
        "idle_ping_s": PING_SECONDS,
        "settle_s": SETTLE_SECONDS,
        "open_files": fd_limit,
        "daphne": package_version("daphne"),
        "channels_redis": package_version("channels-redis"),
        "websockets": package_version("websockets"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "smoke": args.smoke,
        "stack_ready_s": ready_s,
        "run_s": round(time.monotonic() - started, 1),
        "load_average_1min": {"before": load_before, "after": round(os.getloadavg()[0], 2)},
    }
    report(out, config)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted: every part of the stack was stopped", file=sys.stderr)
        sys.exit(130)
