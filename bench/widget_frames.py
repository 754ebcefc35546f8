"""What the widget's security checks cost a customer's frame, next to a plain websockets echo in the same run.

    .venv/bin/python bench/widget_frames.py [--rounds 200] [--warmup 20] [--smoke]

Every widget frame is now counted against per-address and per-visitor budgets in Redis before it is
parsed, frames that touch the conversation check the session (epochs, expiry, the conversation it opens)
in their own database round trip, and `hello` validates the token and its conversation in one round trip
(docs/architecture/realtime.md). This measures those paths as a verified customer's widget meets them:

Starts its own PostgreSQL+pgvector and Valkey (bench/answer_quality.py's `embedded_django`: the start-up
code of `make run`), Daphne serving `helpdesk.asgi:application` with the production settings and as
`make run` starts it (`helpdesk.stack.embedded.web_argv`), and a plain `websockets` echo server in a
process of its own (the floor, bench/handoff.py's). One company; one verified customer's session (a real
identity signature through `POST /api/widget/v1/session`) whose conversation holds one message.

Each round, interleaved (CONTRACTS §4), after a warm-up:

  A1  ours   `ping` -> `pong` on the customer's open widget socket: the frame budget (one Redis pipeline)
             and the parse; the cheapest frame, so the budget's share is the largest.
  A3  ours   `handoff.cancel` -> `ack` on the same socket while nobody is waiting: a frame that touches
             the conversation and changes nothing; the budget, then one database round trip that checks
             the session (epochs, expiry, conversation) and takes the conversation's row lock.
  B1  floor  one round trip of a frame of the same size on the echo server.
  A2  ours   a new widget socket: connect (Origin and widget key checked, a socket slot taken in Redis),
             `hello` -> `welcome` (token, epochs and expiry, the conversation it opens, the replay).
  B2  floor  a new echo socket: connect, one round trip.

Reported: p50/p95 of each, ratios A1/B1, A3/B1 and A2/B2 (p50, p95, 90% bootstrap interval over rounds),
and the configuration. A table, then a last line of JSON (keys `bench`, `ratio_frame_p50`, `ratio_hello_p50`,
`ratio_conversation_frame_p50`, `frame_ms`, `conversation_frame_ms`, `hello_ms`, `echo_ms`,
`echo_connect_ms`, `config`). `--smoke`: 3 warm-up and 20 measured rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.answer_quality import embedded_django  # noqa: E402
from bench.handoff import ECHO_SERVER  # noqa: E402
from bench.stats import bootstrap_ci, p50_p95, package_version, ratio  # noqa: E402
from helpdesk.stack import embedded  # noqa: E402
from helpdesk.stack.procs import Child  # noqa: E402

SERVER_SETTINGS = "helpdesk.settings.production"
CUSTOMER = "cust-bench-1"


@dataclass
class Stack:
    web_url: str
    echo_url: str
    origin: str
    widget_key: str
    token: str
    children: list[Child]


def _post_json(url: str, body: dict[str, Any], origin: str) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 (loopback http)
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Origin": origin},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback)
        return json.load(response)


@contextmanager
def frames_stack() -> Iterator[Stack]:
    web_port, echo_port = embedded.free_port(), embedded.free_port()
    web_url = f"http://127.0.0.1:{web_port}"
    # Every process reads it at import: the secrets sealed here must open in Daphne.
    os.environ["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(48)
    with embedded_django("hdwf-") as tmp:
        from apps.accounts import services as accounts
        from apps.conversations.identity import identity_signature

        tenant = accounts.tenant_create(slug="bench", name="Bench Telecom", origins=[web_url])
        server_env = {
            **os.environ,  # DATABASE_URL, REDIS_URL, HELPDESK_VAR_DIR, DJANGO_SECRET_KEY
            "DJANGO_SETTINGS_MODULE": SERVER_SETTINGS,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_SECURE_SSL_REDIRECT": "false",  # plain http on loopback
            "LLM_BASE_URL": "http://127.0.0.1:9/v1",  # nothing is asked of a model here
            "LLM_API_KEY": "bench",
            "METRICS_TOKEN": secrets.token_urlsafe(32),
            # Budgets far above the run's own traffic: they are counted, never hit.
            "WIDGET_RATE_FRAMES_VISITOR": "1000000",
            "WIDGET_RATE_FRAMES_IP": "1000000",
            "WIDGET_SOCKETS_PER_IP": "1000",
            "WIDGET_RATE_SESSIONS_IP": "1000",
            "PYTHONUNBUFFERED": "1",
        }
        children: list[Child] = []
        try:
            for name, argv in (
                ("daphne", embedded.web_argv(host="127.0.0.1", port=web_port)),
                ("echo", [sys.executable, "-c", ECHO_SERVER, str(echo_port)]),
            ):
                child = Child(name, argv, log_path=tmp / "log" / f"{name}.log", env=server_env, cwd=ROOT)
                child.start()
                children.append(child)
            embedded.wait_until(
                lambda: embedded.http_ready(f"{web_url}/accounts/login/"), timeout=90, what="daphne"
            )
            issued = int(time.time())
            identity = {
                "external_id": CUSTOMER,
                "issued_at": issued,
                "signature": identity_signature(
                    secret=tenant.identity_secret, external_id=CUSTOMER, issued_at=issued
                ),
            }
            session = _post_json(
                f"{web_url}/api/widget/v1/session",
                {"widget_key": tenant.widget_key, "identity": identity},
                web_url,
            )
            assert session["verified"] is True, session
            yield Stack(
                web_url=web_url,
                echo_url=f"ws://127.0.0.1:{echo_port}",
                origin=web_url,
                widget_key=tenant.widget_key,
                token=session["token"],
                children=children,
            )
        except embedded.NotReady as exc:
            tails = "\n".join(f"--- {c.name} ---\n{c.log_tail()}" for c in children)
            raise SystemExit(f"the stack did not come up: {exc}\n{tails}") from None
        finally:
            for child in reversed(children):
                child.stop()


async def _until(ws: Any, kind: str) -> dict[str, Any]:
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
        if frame.get("type") == "error":
            raise SystemExit(f"the desk answered an error: {frame}")
        if frame.get("type") == kind:
            return frame


async def _widget(stack: Stack) -> Any:
    from websockets.asyncio.client import connect
    from websockets.typing import Origin

    url = stack.web_url.replace("http://", "ws://") + f"/ws/widget/?key={stack.widget_key}"
    return await connect(url, origin=Origin(stack.origin), compression=None, ping_interval=None)


async def _hello(stack: Stack) -> float:
    started = time.perf_counter()
    ws = await _widget(stack)
    try:
        await ws.send(json.dumps({"type": "hello", "token": stack.token, "client_msg_id": str(uuid.uuid4())}))
        await _until(ws, "welcome")
        return (time.perf_counter() - started) * 1000
    finally:
        await ws.close()


async def _echo_connect(stack: Stack, frame: str) -> float:
    from websockets.asyncio.client import connect

    started = time.perf_counter()
    async with connect(stack.echo_url, compression=None, ping_interval=None) as ws:
        await ws.send(frame)
        await ws.recv()
        return (time.perf_counter() - started) * 1000


async def measure(stack: Stack, warmup: int, rounds: int) -> dict[str, list[float]]:
    from websockets.asyncio.client import connect

    out: dict[str, list[float]] = {
        "frame": [],
        "conversation_frame": [],
        "echo": [],
        "hello": [],
        "echo_connect": [],
    }
    widget = await _widget(stack)
    echo = await connect(stack.echo_url, compression=None, ping_interval=None)
    try:
        await widget.send(json.dumps({"type": "hello", "token": stack.token, "client_msg_id": "h"}))
        await _until(widget, "welcome")
        await widget.send(json.dumps({"type": "message", "text": "Is roaming free?", "client_msg_id": "m"}))
        await _until(widget, "ack")
        for n in range(warmup + rounds):
            ping = json.dumps({"type": "ping", "client_msg_id": f"p-{n:08d}"})
            await asyncio.sleep(0.02)
            started = time.perf_counter()
            await widget.send(ping)
            await _until(widget, "pong")
            frame_ms = (time.perf_counter() - started) * 1000
            await asyncio.sleep(0.02)
            started = time.perf_counter()
            await widget.send(json.dumps({"type": "handoff.cancel", "client_msg_id": f"c-{n:08d}"}))
            await _until(widget, "ack")
            conversation_frame_ms = (time.perf_counter() - started) * 1000
            await asyncio.sleep(0.02)
            started = time.perf_counter()
            await echo.send(ping)
            await echo.recv()
            echo_ms = (time.perf_counter() - started) * 1000
            await asyncio.sleep(0.02)
            hello_ms = await _hello(stack)
            await asyncio.sleep(0.02)
            echo_connect_ms = await _echo_connect(stack, ping)
            if n >= warmup:
                out["frame"].append(frame_ms)
                out["conversation_frame"].append(conversation_frame_ms)
                out["echo"].append(echo_ms)
                out["hello"].append(hello_ms)
                out["echo_connect"].append(echo_connect_ms)
    finally:
        await widget.close()
        await echo.close()
    return out


def report(samples: dict[str, list[float]], config: dict[str, Any]) -> dict[str, Any]:
    stats = {name: p50_p95(values) for name, values in samples.items()}
    result = {
        "bench": "widget_frames",
        "frame_ms": stats["frame"],
        "conversation_frame_ms": stats["conversation_frame"],
        "echo_ms": stats["echo"],
        "hello_ms": stats["hello"],
        "echo_connect_ms": stats["echo_connect"],
        "ratio_frame_p50": ratio(stats["frame"]["p50"], stats["echo"]["p50"]),
        "ratio_frame_p95": ratio(stats["frame"]["p95"], stats["echo"]["p95"]),
        "ratio_frame_ci90": bootstrap_ci(samples["frame"], samples["echo"]),
        "ratio_conversation_frame_p50": ratio(stats["conversation_frame"]["p50"], stats["echo"]["p50"]),
        "ratio_conversation_frame_p95": ratio(stats["conversation_frame"]["p95"], stats["echo"]["p95"]),
        "ratio_conversation_frame_ci90": bootstrap_ci(samples["conversation_frame"], samples["echo"]),
        "ratio_hello_p50": ratio(stats["hello"]["p50"], stats["echo_connect"]["p50"]),
        "ratio_hello_p95": ratio(stats["hello"]["p95"], stats["echo_connect"]["p95"]),
        "ratio_hello_ci90": bootstrap_ci(samples["hello"], samples["echo_connect"]),
        "config": config,
    }
    rows = [
        ("A1 ping -> pong (ours)", stats["frame"]),
        ("A3 handoff.cancel -> ack (ours)", stats["conversation_frame"]),
        ("B1 echo round trip (floor)", stats["echo"]),
        ("A2 connect + hello -> welcome (ours)", stats["hello"]),
        ("B2 connect + echo (floor)", stats["echo_connect"]),
    ]
    print(f"{'path':<40} {'p50 ms':>9} {'p95 ms':>9} {'n':>5}")
    for name, row in rows:
        print(f"{name:<40} {row['p50']:>9.2f} {row['p95']:>9.2f} {row['n']:>5}")
    print(
        f"ratio A1/B1 p50 {result['ratio_frame_p50']} (90% CI {result['ratio_frame_ci90']}), "
        f"p95 {result['ratio_frame_p95']}; A3/B1 p50 {result['ratio_conversation_frame_p50']} "
        f"(90% CI {result['ratio_conversation_frame_ci90']}); A2/B2 p50 {result['ratio_hello_p50']} "
        f"(90% CI {result['ratio_hello_ci90']}), p95 {result['ratio_hello_p95']}"
    )
    print(json.dumps(result))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--smoke", action="store_true", help="3 warm-up and 20 measured rounds")
    args = parser.parse_args()
    warmup, rounds = (3, 20) if args.smoke else (args.warmup, args.rounds)
    with frames_stack() as stack:
        samples = asyncio.run(measure(stack, warmup, rounds))
        config = {
            "rounds": rounds,
            "warmup": warmup,
            "settings": SERVER_SETTINGS,
            "session": "verified customer",
            # 0 (the production default) opens a database connection per round trip of a socket's frame.
            "database_conn_max_age": os.environ.get("DATABASE_CONN_MAX_AGE", "0"),
            "daphne": package_version("daphne"),
            "channels": package_version("channels"),
            "websockets": package_version("websockets"),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        }
    report(samples, config)


if __name__ == "__main__":
    main()
