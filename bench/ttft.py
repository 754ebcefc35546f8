"""Time to first token and inter-token latency a widget customer sees, against the raw model server.

    .venv/bin/python bench/ttft.py [--rounds 20] [--warmup 2] [--smoke]

Starts its own stack in a temporary directory: PostgreSQL+pgvector and Valkey (the start-up code of
`make run`, through bench/answer_quality.py's `embedded_django`), the real local llama.cpp server with
the shipped SmolLM2 GGUF file (`helpdesk.stack.embedded.llm_child`, as `make run` starts it), and Daphne
serving `helpdesk.asgi:application` with the production settings module, pointed at them. It migrates,
loads the demo company (`manage.py demo_load`: twelve published policies) and waits until every part
`/healthz` checks is green except Celery (nothing on the reply path queues a task, so none is started).
Everything is stopped and the directory removed at the end, on an error, Ctrl-C or SIGTERM too.

Questions: the answerable questions of bench/data/questions.jsonl, taken round-robin over the twelve
policy documents, so consecutive questions come from different documents and every prompt differs.

Each round, after a warm-up, runs two requests, interleaved A B A B (CONTRACTS §4):

  A  ours   a fresh widget session (POST /api/widget/v1/session, with an allowed Origin), a websocket
            to /ws/widget/, `hello`, then a `message` frame. t0 is taken just before the frame is sent;
            TTFT is t0 -> the first `assistant.delta` frame; every delta's arrival is recorded until
            `assistant.completed`. Everything the customer waits for is inside: Presidio at receipt,
            storage, input checks, query embedding, retrieval, prompt, the model, Redis and the push.
  B  floor  the raw llama.cpp server, streamed with the `openai` client, with the exact prompt our
            pipeline built (read back from AssistantTrace) and the request's other arguments exactly as
            the pipeline sends them (model, max_tokens, temperature, stop, stream_options): taken from
            the pipeline's code at start-up, not copied (see `floor_request_params`), and recorded in
            the configuration. TTFT is request -> first chunk with content; every content chunk's
            arrival is recorded.

Fairness: the KV cache. llama.cpp keeps the tokens of the last request and reuses the longest common
prefix for the next one. Replaying A_i's prompt right after A_i would make B_i skip almost all of its
prompt evaluation and look unfairly fast. So B_i replays the prompt of the *previous* round, A_{i-1}:

    ... A_{i-1}  B_{i-1}(prompt of A_{i-2})  A_i  B_i(prompt of A_{i-1})  A_{i+1}  B_{i+1}(prompt of A_i) ...

Before every request the server last processed the prompt of a different question (A_i follows the
prompt of question i-2, B_i the prompt of question i), and questions two apart come from different
documents, so each request shares only the fixed system prefix with what is cached. This is checked,
not assumed: the server's own log line ("N prefix-match hit, remaining M prompt tokens to eval") is read
for every request and both sides' reuse and evaluated prompt tokens are reported.

Reported, p50 and p95 over rounds, with ratios ours / floor:
  - TTFT: customer-visible (A) vs raw (B).
  - ITL (inter-token latency): per reply, (last text arrival - first text arrival) / (tokens - 1): for A
    the span over which the websocket client received `assistant.delta` frames, divided by the tokens
    the model streamed for that reply (its stored completion_tokens; the desk batches pieces that
    arrive within 50 ms into one frame, so frames are not tokens); for B the raw stream's content
    chunks, one per token. Then p50/p95 over replies. The pooled distribution of single gaps between
    arrivals is reported too: for A it shows the batching (and any stall) a per-reply mean hides.
  - Each ratio of medians also per prompt (A_i against the B that replayed A_i's prompt, median of the
    per-pair ratios), and with a 90% bootstrap interval over rounds: on a shared 2-core machine a few
    rounds slowed by other work move a ratio of 20 medians, and the interval says by how much.
  - The model's own generation time per token for each request (the server's log): tells a slower
    model (CPU taken from it) from a slower delivery.
  - CPU time per request of each part (psutil: the model server, Daphne, Valkey, PostgreSQL with its
    backends, this client), per reply and per content piece.
  - The server-side breakdown of A from Message.timings (retrieval_ms, llm_ttft_ms, ttft_ms, ...) and
    from the client's clock (ack, `looking_up`, `thinking` progress frames).
  - Presidio's cost per message: `pii_redact` timed in this process on the same question texts after a
    warm-up (p50), as a share of the raw TTFT p50; and Presidio pattern-only (no NER), the PII floor.
  - A fresh PostgreSQL connection against an open one (the default DATABASE_CONN_MAX_AGE=0 opens one
    per database call on the reply path).
Goals (ours/raw p50 <= 1.10, stretch 1.05; Presidio <= 10% of raw TTFT) are printed PASS/MISS, with
"inconclusive" when the 90% interval holds the goal; a miss never fails the run. Prints tables, then a
last line of JSON (keys `ttft_ratio_p50`, `itl_ratio_p50`, `presidio_share`, ..., every figure, each
round's, and the configuration: model file, quantisation, n_ctx, threads, the floor's request
arguments, questions, prompt tokens, load average).

`--smoke`: 1 warm-up round and 2 measured rounds, for CI (tests/bench/test_ttft_smoke.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import itertools
import json
import os
import random
import re
import secrets
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.answer_quality import QUESTIONS, embedded_django  # noqa: E402
from bench.stats import argv_value, package_version  # noqa: E402
from helpdesk.stack import embedded  # noqa: E402
from helpdesk.stack.procs import Child  # noqa: E402

DAPHNE_SETTINGS = "helpdesk.settings.production"
GOAL_RATIO, STRETCH_RATIO, GOAL_PRESIDIO_SHARE = 1.10, 1.05, 0.10
SETTLE_SECONDS = 0.5  # idle before every request, both sides: the previous one's trailing work finishes
REQUEST_TIMEOUT_SECONDS = 180.0
PRESIDIO_REPEATS = 5  # timed passes over the question texts
DB_PROBES = 30
BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED = 2000, 20261124
FINAL = ("assistant.completed", "assistant.interrupted", "assistant.failed", "assistant.superseded")
PREFIX_HIT = re.compile(r"(\d+) prefix-match hit, remaining (\d+) prompt tokens to eval")
PROMPT_EVAL = re.compile(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens")
EVAL = re.compile(r"eval time =\s*([\d.]+) ms /\s*(\d+) runs")
QUANT = re.compile(r"\.((?:I?Q\d[\w]*)|F16|F32|BF16)\.gguf$", re.IGNORECASE)


# ---- statistics --------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..1) of a non-empty list."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def p50_p95(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "n": 0}
    return {"p50": round(pct(values, 0.5), 2), "p95": round(pct(values, 0.95), 2), "n": len(values)}


def ratio(ours: float | None, floor: float | None) -> float | None:
    return round(ours / floor, 3) if ours is not None and floor else None


def mean_gap_ms(arrivals: list[float], tokens: int | None = None) -> float | None:
    """Mean time per token over the span text arrived in; `tokens` when arrivals carry several each."""
    count = tokens if tokens is not None else len(arrivals)
    if len(arrivals) < 2 or count < 2:
        return None
    return (arrivals[-1] - arrivals[0]) / (count - 1) * 1000


def gaps_ms(arrivals: list[float]) -> list[float]:
    return [(b - a) * 1000 for a, b in itertools.pairwise(arrivals)]


# ---- questions ---------------------------------------------------------------------------------------


def questions_round_robin() -> list[dict[str, Any]]:
    """Answerable questions, one document after another, so neighbours (and questions two apart) differ."""
    rows = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    by_document: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["answerable"]:
            by_document.setdefault(row["document"], []).append(row)
    documents = sorted(by_document)
    ordered: list[dict[str, Any]] = []
    for depth in range(max(len(v) for v in by_document.values())):
        ordered += [by_document[d][depth] for d in documents if depth < len(by_document[d])]
    return ordered


# ---- the stack ---------------------------------------------------------------------------------------


@dataclass
class Stack:
    web_url: str
    llm_base_url: str
    llm_log: Path
    widget_key: str
    llm_argv: list[str]
    model_alias: str
    daphne_env: dict[str, str]
    children: list[Child]
    tmp: Path
    llm_pid: int
    daphne_pid: int
    redis_port: int

    def log_tails(self, lines: int = 25) -> str:
        return "\n".join(
            f"--- last lines of {c.log_path.name} ---\n{c.log_tail(lines)}" for c in self.children
        )


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every `finally`, which stops the children


def _wait_healthy(web_url: str, daphne: Child, timeout: float, token: str) -> None:
    """Every check /healthz runs is green except Celery's (no worker is started: the reply path uses none).
    Only a token holder sees the checks one by one."""
    request = urllib.request.Request(  # noqa: S310 (loopback URL we built)
        f"{web_url}/healthz", headers={"Authorization": f"Bearer {token}"}
    )

    def probe() -> None:
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            body = json.load(exc)
        down = [
            f"{name}: {check['detail']}"
            for name, check in body["checks"].items()
            if name != "celery" and check["status"] != "ok"
        ]
        if down:
            raise embedded.NotReady("; ".join(down))

    embedded.wait_until(probe, timeout=timeout, what="daphne /healthz", child=daphne)


@contextmanager
def ttft_stack() -> Iterator[Stack]:
    llm_port, web_port = embedded.free_port(), embedded.free_port()
    web_url = f"http://127.0.0.1:{web_port}"
    log_level = os.environ.get("LOG_LEVEL")  # embedded_django quiets this process; Daphne keeps its own
    # Before embedded_django's django.setup(): settings read the URL once, at import.
    os.environ["LLM_BASE_URL"] = f"http://127.0.0.1:{llm_port}/v1"
    with embedded_django("hdtt-") as tmp:
        from django.conf import settings

        children: list[Child] = []
        loader: subprocess.Popen[str] | None = None
        try:
            llm = embedded.llm_child(
                port=llm_port,
                model_alias=settings.LLM_MODEL,
                log_path=tmp / "log" / "llm.log",
                env=dict(os.environ),
                cwd=ROOT,
            )
            llm.start()
            children.append(llm)
            daphne_env = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": DAPHNE_SETTINGS,
                "DJANGO_SECRET_KEY": secrets.token_urlsafe(48),
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
                # Plain http on loopback: production's redirect to https would answer every request 301.
                "DJANGO_SECURE_SSL_REDIRECT": "false",
                "LLM_API_KEY": settings.LLM_API_KEY,
                # Required by the production settings; it also shows /healthz's checks one by one.
                "METRICS_TOKEN": secrets.token_urlsafe(32),
                # Every round opens a session and sends a message from 127.0.0.1; the per-IP limits are
                # tested elsewhere. The limiter still runs (the same Redis round trips), it just never trips.
                "WIDGET_RATE_SESSIONS_IP": "100000",
                "WIDGET_RATE_IP": "100000",
                "PYTHONUNBUFFERED": "1",
            }
            if log_level is None:
                daphne_env.pop("LOG_LEVEL", None)
            else:
                daphne_env["LOG_LEVEL"] = log_level
            daphne = Child(
                "daphne",
                embedded.web_argv(host="127.0.0.1", port=web_port),
                log_path=tmp / "log" / "daphne.log",
                env=daphne_env,
                cwd=ROOT,
            )
            daphne.start()
            children.append(daphne)
            # The demo company, ingested and published in its own process while the servers load.
            loader = subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "manage.py"),
                    "demo_load",
                    "--json",
                    # This process runs the test settings (DEBUG off) on its own throwaway database.
                    "--allow-non-debug",
                    "--origin",
                    web_url,
                ],
                cwd=ROOT,
                env=dict(os.environ),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            out, err = loader.communicate(timeout=600)
            if loader.returncode != 0:
                raise SystemExit(f"manage.py demo_load failed: {err.strip().splitlines()[-1:]}")
            demo = json.loads(out.strip().splitlines()[-1])
            if not demo["documents_published"]:
                raise SystemExit("manage.py demo_load published no policy")
            llm_base_url = os.environ["LLM_BASE_URL"]
            embedded.wait_until(
                lambda: embedded.http_ready(f"{llm_base_url}/models"), timeout=180, what="llm", child=llm
            )
            _wait_healthy(web_url, daphne, timeout=240, token=daphne_env["METRICS_TOKEN"])
            yield Stack(
                web_url=web_url,
                llm_base_url=llm_base_url,
                llm_log=llm.log_path,
                widget_key=demo["widget_key"],
                llm_argv=llm.argv,
                model_alias=settings.LLM_MODEL,
                daphne_env=daphne_env,
                children=children,
                tmp=tmp,
                llm_pid=llm.pid or 0,
                daphne_pid=daphne.pid or 0,
                redis_port=int(os.environ["REDIS_URL"].rsplit(":", 1)[1].split("/")[0]),
            )
        except embedded.NotReady as exc:
            tails = "\n".join(f"--- {c.name} ---\n{c.log_tail()}" for c in children)
            raise SystemExit(f"the stack did not come up: {exc}\n{tails}") from None
        finally:
            if loader is not None and loader.poll() is None:
                loader.kill()
                loader.wait(timeout=10)
            for child in reversed(children):
                child.stop()


# ---- one request each side ---------------------------------------------------------------------------


@dataclass
class Reply:
    ttft_ms: float | None
    arrivals: list[float]  # perf_counter of every content piece
    tokens: int | None = None  # tokens those pieces carried, when a piece may carry several (A)
    marks_ms: dict[str, float] = field(default_factory=dict)  # client-side milestones after t0 (A only)
    message_id: str = ""
    status: str = ""
    cache_reused: int | None = None  # prompt tokens the server took from its KV cache
    cache_evaluated: int | None = None  # prompt tokens it evaluated
    server_eval_ms_per_token: float | None = None  # the model's own generation speed (its log)
    cpu_ms: dict[str, float] = field(default_factory=dict)  # CPU time per part during the request


def session_token(stack: Stack) -> str:
    request = urllib.request.Request(  # noqa: S310 (loopback URL we built)
        f"{stack.web_url}/api/widget/v1/session",
        data=json.dumps({"widget_key": stack.widget_key}).encode(),
        headers={"Content-Type": "application/json", "Origin": stack.web_url},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return str(json.load(response)["token"])
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"POST /api/widget/v1/session answered {exc.code}: {exc.read()[:300]!r}") from None


async def _ours(stack: Stack, meter: CpuMeter, token: str, text: str) -> Reply:
    from websockets.asyncio.client import connect

    ws_url = stack.web_url.replace("http://", "ws://") + f"/ws/widget/?key={stack.widget_key}"
    async with connect(ws_url, origin=stack.web_url, proxy=None, open_timeout=30) as ws:  # type: ignore[arg-type]
        await ws.send(json.dumps({"type": "hello", "client_msg_id": "hello", "token": token, "last_seq": 0}))
        while json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] != "welcome":
            pass
        await asyncio.sleep(SETTLE_SECONDS)
        frame_out = json.dumps({"type": "message", "client_msg_id": uuid.uuid4().hex, "text": text})
        arrivals: list[float] = []
        marks: dict[str, float] = {}
        cpu_before = meter.snapshot()
        t0 = time.perf_counter()
        await ws.send(frame_out)
        async with asyncio.timeout(REQUEST_TIMEOUT_SECONDS):
            while True:
                raw = await ws.recv()
                now = time.perf_counter()
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind == "assistant.delta":
                    arrivals.append(now)
                elif kind == "assistant.progress":
                    marks.setdefault(frame["stage"], (now - t0) * 1000)
                elif kind in ("ack", "assistant.started"):
                    marks.setdefault(kind, (now - t0) * 1000)
                elif kind == "error":
                    raise RuntimeError(f"the widget socket answered an error: {frame}")
                elif kind in FINAL:
                    marks["completed"] = (now - t0) * 1000
                    message = frame.get("message") or {}
                    return Reply(
                        ttft_ms=(arrivals[0] - t0) * 1000 if arrivals else None,
                        arrivals=arrivals,
                        marks_ms=marks,
                        message_id=str(message.get("id") or frame.get("message_id") or ""),
                        status=str(message.get("status") or kind),
                        cpu_ms=meter.used_ms(cpu_before, meter.snapshot()),
                    )


def ours_once(stack: Stack, meter: CpuMeter, text: str) -> Reply:
    token = session_token(stack)  # a fresh session: a new visitor, a new conversation, no history
    return asyncio.run(_ours(stack, meter, token, text))


class _Captured(Exception):
    def __init__(self, kwargs: dict[str, Any]) -> None:
        super().__init__("captured")
        self.kwargs = kwargs


def floor_request_params() -> tuple[dict[str, Any], dict[str, Any]]:
    """What the pipeline's model request carries besides the prompt, taken from the pipeline's own code
    rather than copied from it, so the floor stays the same request when that code changes:

    1. the keyword arguments apps/conversations/assistant.py passes to `chat_stream`, read from its
       source and evaluated in its module (settings, constants);
    2. what `chat_stream` turns them into: it is run once here against a stub client that captures the
       arguments of `chat.completions.create` and stops.

    Returns (chat_stream's arguments, the request's arguments without `messages` and `timeout`)."""
    import ast
    from types import SimpleNamespace

    from apps.conversations import assistant
    from apps.llm import streaming

    calls = [
        node
        for node in ast.walk(ast.parse(inspect.getsource(assistant)))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "chat_stream"
    ]
    if len(calls) != 1:
        raise SystemExit(
            f"expected one chat_stream call in assistant.py, found {len(calls)}: update bench/ttft.py"
        )
    stream_kwargs: dict[str, Any] = {}
    for keyword in calls[0].keywords:
        if keyword.arg in (None, "on_delta"):
            continue
        try:
            # Our own source, evaluated in its own module: settings.X and module constants.
            stream_kwargs[keyword.arg] = eval(  # noqa: S307
                compile(ast.Expression(keyword.value), "assistant.py", "eval"), vars(assistant)
            )
        except NameError as exc:
            raise SystemExit(
                f"assistant.py passes chat_stream {keyword.arg}= from a local value ({exc}): "
                "bench/ttft.py cannot send the floor the same request; update floor_request_params"
            ) from None

    async def capture(**kwargs: Any) -> None:
        raise _Captured(kwargs)

    async def ignore(piece: str) -> None:
        return None

    stub = SimpleNamespace(chat=SimpleNamespace(completions=SimpleNamespace(create=capture)))
    real_client = streaming.async_llm_client
    streaming.async_llm_client = lambda **_: stub  # type: ignore[assignment]
    try:
        probe = [streaming.ChatMessage(role="user", content="probe")]
        asyncio.run(streaming.chat_stream(probe, on_delta=ignore, **stream_kwargs))
    except _Captured as captured:
        request = {k: v for k, v in captured.kwargs.items() if k not in ("messages", "timeout")}
    else:
        raise SystemExit("chat_stream made no request to capture: update bench/ttft.py")
    finally:
        streaming.async_llm_client = real_client
    if not request.get("stream"):
        raise SystemExit("the pipeline's request is not streamed: bench/ttft.py measures streams")
    return stream_kwargs, request


def raw_once(client: Any, meter: CpuMeter, prompt: list[dict[str, str]], request: dict[str, Any]) -> Reply:
    time.sleep(SETTLE_SECONDS)
    arrivals: list[float] = []
    cpu_before = meter.snapshot()
    t0 = time.perf_counter()
    stream = client.chat.completions.create(messages=prompt, **request)
    for chunk in stream:
        now = time.perf_counter()
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(now)
    cpu_ms = meter.used_ms(cpu_before, meter.snapshot())
    return Reply(
        cpu_ms=cpu_ms,
        ttft_ms=(arrivals[0] - t0) * 1000 if arrivals else None,
        arrivals=arrivals,
        status="complete",
    )


def read_server_log(log: Path, offset: int, reply: Reply) -> int:
    """Reads the model server's log lines since `offset` (one request's) into `reply`: the prompt
    tokens reused from the KV cache and evaluated, and the model's generation time per token. Returns
    the new offset."""
    time.sleep(0.05)
    with log.open("rb") as handle:
        handle.seek(offset)
        data = handle.read()
    text = data.decode("utf-8", errors="replace")
    hits = PREFIX_HIT.findall(text)
    if hits:
        reply.cache_reused, reply.cache_evaluated = int(hits[-1][0]), int(hits[-1][1])
    elif "full prompt already cached" in text:
        reply.cache_reused, reply.cache_evaluated = -1, 0  # flagged: the pairing should prevent it
    else:
        prompt_evals = PROMPT_EVAL.findall(text)
        if prompt_evals:
            reply.cache_reused, reply.cache_evaluated = 0, int(prompt_evals[-1][1])
    evals = EVAL.findall(text)
    if evals and int(evals[-1][1]) > 0:
        reply.server_eval_ms_per_token = float(evals[-1][0]) / int(evals[-1][1])
    return offset + len(data)


class CpuMeter:
    """CPU time (user + system) of each part of the stack, children included: the model server, Daphne,
    Valkey, PostgreSQL (postmaster, live backends and the ones that exited) and this client process."""

    def __init__(self, stack: Stack) -> None:
        import psutil

        self.client = psutil.Process()  # this process alone: every part of the stack is its child
        self.parts: dict[str, psutil.Process] = {
            "llm": psutil.Process(stack.llm_pid),
            "daphne": psutil.Process(stack.daphne_pid),
        }
        valkey_address = f"127.0.0.1:{stack.redis_port}"  # Valkey rewrites its command line to this
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = " ".join(proc.info["cmdline"] or [])
            if str(stack.tmp / "pgdata") in cmdline and "postgres" in cmdline:
                self.parts["postgres"] = proc
            elif valkey_address in cmdline and "valkey" in cmdline:
                self.parts["valkey"] = proc

    def snapshot(self) -> dict[str, float]:
        import psutil

        own = self.client.cpu_times()
        totals: dict[str, float] = {"client": own.user + own.system}
        for name, proc in self.parts.items():
            try:
                times = proc.cpu_times()
                total = times.user + times.system + times.children_user + times.children_system
                for child in proc.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        child_times = child.cpu_times()
                        total += child_times.user + child_times.system
            except psutil.Error:
                continue
            totals[name] = total
        return totals

    @staticmethod
    def used_ms(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {k: round((after[k] - before[k]) * 1000, 1) for k in before.keys() & after.keys()}


# ---- the benchmark -----------------------------------------------------------------------------------


@dataclass
class Round:
    question_id: str
    question: str
    document: str
    ours: Reply
    raw: Reply | None
    raw_of: str | None  # the question whose prompt (from an earlier round) the raw request replayed
    timings: dict[str, float]


def run_rounds(
    stack: Stack, warmup: int, rounds: int, request: dict[str, Any]
) -> tuple[list[Round], list[str]]:
    import openai
    from django.conf import settings

    from apps.conversations.models import AssistantTrace, Message

    client = openai.OpenAI(
        base_url=stack.llm_base_url, api_key=settings.LLM_API_KEY, max_retries=0, timeout=120
    )
    questions = questions_round_robin()
    done: list[Round] = []
    skipped: list[str] = []
    previous: tuple[str, list[dict[str, str]]] | None = None  # the last answered question and its prompt
    offset = stack.llm_log.stat().st_size
    meter = CpuMeter(stack)
    index = 0
    while len(done) < warmup + rounds:
        if index >= len(questions):
            raise SystemExit(f"ran out of questions after {len(skipped)} abstentions or failures")
        question = questions[index]
        index += 1
        ours = ours_once(stack, meter, question["question"])
        offset = read_server_log(stack.llm_log, offset, ours)
        message = Message.objects.filter(id=ours.message_id).first() if ours.message_id else None
        trace = AssistantTrace.objects.filter(message_id=ours.message_id).first() if message else None
        if message is not None:
            ours.tokens = message.completion_tokens
        if message is None or ours.status != "complete":
            raise SystemExit(
                f"reply {ours.message_id or '?'} ended {ours.status or 'without an answer'}\n"
                f"{stack.log_tails()}"
            )
        if message.abstained or message.guardrail_reasons or trace is None or not trace.prompt:
            # Abstained (nothing relevant published) or refused by the input checks: the model was not asked.
            skipped.append(f"{question['id']} ({'abstained' if message.abstained else 'refused'})")
            continue
        if ours.ttft_ms is None:
            # The model was asked but streamed no text (e.g. it began with a stop sequence): no TTFT.
            skipped.append(f"{question['id']} (no text streamed)")
            continue
        raw = None
        if previous is not None:
            raw = raw_once(client, meter, previous[1], request)
            offset = read_server_log(stack.llm_log, offset, raw)
        done.append(
            Round(
                question_id=question["id"],
                question=question["question"],
                document=question["document"],
                ours=ours,
                raw=raw,
                raw_of=previous[0] if previous else None,
                timings=dict(message.timings),
            )
        )
        previous = (question["id"], trace.prompt)
        phase = "warm-up" if len(done) <= warmup else f"round {len(done) - warmup}/{rounds}"
        print(
            f"  {phase:<14} ours TTFT {_ms(ours.ttft_ms)}  raw TTFT {_ms(raw.ttft_ms if raw else None)}  "
            f"{question['id']} {question['document']}",
            file=sys.stderr,
            flush=True,
        )
    client.close()
    return done[warmup:], skipped


def _ms(value: float | None) -> str:
    return f"{value:7.0f} ms" if value is not None else f"{'-':>7}   "


def db_connect_cost() -> dict[str, Any]:
    """A fresh PostgreSQL connection against a reused one, each running `SELECT 1`.

    With DATABASE_CONN_MAX_AGE=0 (the default), Channels' `database_sync_to_async` closes the connection
    after every call, so each database call on the reply path opens a new one (six or more before the
    first token: message_receive, reply_start, turn_messages, knowledge_search, history_messages,
    trace_record).
    """
    from django.db import connection

    fresh, reused = [], []
    for _ in range(DB_PROBES):
        connection.close()
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        fresh.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        reused.append((time.perf_counter() - started) * 1000)
    connection.close()
    return {"fresh_connection_ms": p50_p95(fresh), "open_connection_ms": p50_p95(reused)}


def presidio_cost(texts: list[str]) -> dict[str, Any]:
    from apps.guardrails import pii
    from apps.guardrails.recognizers import build_analyzer

    floor = build_analyzer(model_name=pii._model_name(), ner=False)  # the pattern-only floor
    for text in texts:  # warm-up: loads spaCy and Presidio, touches every recognizer
        pii.pii_redact(text)
        floor.analyze(text)
    ours_ms, floor_ms = [], []
    for _ in range(PRESIDIO_REPEATS):
        for text in texts:
            started = time.perf_counter()
            pii.pii_redact(text)
            ours_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            floor.analyze(text)
            floor_ms.append((time.perf_counter() - started) * 1000)
    return {
        "pii_redact_ms": p50_p95(ours_ms),
        "pattern_only_ms": p50_p95(floor_ms),
        "model": pii._model_name(),
        "texts": len(texts),
        "repeats": PRESIDIO_REPEATS,
        "mean_words": round(statistics.mean(len(t.split()) for t in texts), 1),
    }


def verdict(
    value: float | None, goal: float, stretch: float | None = None, ci: list[float | None] | None = None
) -> str:
    if value is None:
        return "n/a"
    if stretch is not None and value <= stretch:
        result = "PASS (stretch)"
    else:
        result = "PASS" if value <= goal else "MISS"
    low, high = ci or [None, None]
    if low is not None and high is not None and low <= goal < high:
        result += ", inconclusive"  # the 90% interval holds both sides of the goal
    return result


def median_ratio(sample: list[Round], metric: Callable[[Reply], float | None]) -> float | None:
    ours = [m for r in sample if (m := metric(r.ours)) is not None]
    raw = [m for r in sample if r.raw is not None and (m := metric(r.raw)) is not None]
    if not ours or not raw:
        return None
    return statistics.median(ours) / statistics.median(raw)


def bootstrap_ci(rounds: list[Round], metric: Callable[[Reply], float | None]) -> list[float | None]:
    """90% interval of the ratio of medians, over rounds resampled with replacement."""
    rng = random.Random(BOOTSTRAP_SEED)
    values = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        value = median_ratio([rounds[rng.randrange(len(rounds))] for _ in rounds], metric)
        if value is not None:
            values.append(value)
    if not values:
        return [None, None]
    return [round(pct(values, 0.05), 3), round(pct(values, 0.95), 3)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=20, help="measured A B rounds")
    parser.add_argument("--warmup", type=int, default=2, help="rounds run first and discarded")
    parser.add_argument("--smoke", action="store_true", help="CI size: 1 warm-up round, 2 measured")
    args = parser.parse_args()
    if args.smoke:
        args.warmup, args.rounds = 1, 2
    args.warmup = max(1, args.warmup)  # the first round has no previous prompt to replay
    signal.signal(signal.SIGTERM, _raise_exit)
    started = time.monotonic()

    with ttft_stack() as stack:
        from django.conf import settings

        ready_s = time.monotonic() - started
        print(f"stack ready in {ready_s:.0f}s; {args.warmup} warm-up + {args.rounds} rounds", file=sys.stderr)
        load_before = round(os.getloadavg()[0], 2)
        stream_kwargs, request = floor_request_params()
        rounds, skipped = run_rounds(stack, args.warmup, args.rounds, request)
        presidio = presidio_cost([r.question for r in rounds])
        database = db_connect_cost()
        config = {
            "model_file": Path(argv_value(stack.llm_argv, "--model") or "").name,
            "quantisation": (
                m.group(1) if (m := QUANT.search(argv_value(stack.llm_argv, "--model") or "")) else "?"
            ),
            "model_alias": stack.model_alias,
            "llm_server": "llama_cpp.server " + package_version("llama_cpp_python"),
            "n_ctx": int(argv_value(stack.llm_argv, "--n_ctx") or 0),
            "n_threads": int(argv_value(stack.llm_argv, "--n_threads") or 0),
            "chat_stream_arguments": {k: _plain(v) for k, v in stream_kwargs.items()},
            "floor_request": {k: _plain(v) for k, v in request.items()},
            "assistant_passages": settings.ASSISTANT_PASSAGES,
            "daphne_settings": DAPHNE_SETTINGS,
            "database_conn_max_age": int(stack.daphne_env.get("DATABASE_CONN_MAX_AGE", "0")),
            "rounds": len(rounds),
            "warmup": args.warmup,
            "skipped_questions": skipped,
            "questions": [r.question for r in rounds],
            "documents": sorted({r.document for r in rounds}),
            "settle_s": SETTLE_SECONDS,
            "cpus": os.cpu_count(),
            "smoke": args.smoke,
            "stack_ready_s": round(ready_s, 1),
            "load_average_1min": {"before": load_before, "after": round(os.getloadavg()[0], 2)},
        }
    report(rounds, presidio, database, config)


def _plain(value: Any) -> Any:
    """JSON-friendly: tuples as lists, the openai client's `omit` as None."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return None if type(value).__name__ in ("Omit", "NotGiven") else repr(value)


def report(
    rounds: list[Round], presidio: dict[str, Any], database: dict[str, Any], config: dict[str, Any]
) -> None:
    ours = [r.ours for r in rounds]
    raws = [r.raw for r in rounds if r.raw is not None]
    ttft = {
        "ours": p50_p95([x.ttft_ms for x in ours if x.ttft_ms is not None]),
        "raw": p50_p95([x.ttft_ms for x in raws if x.ttft_ms is not None]),
    }
    itl = {
        "ours": p50_p95([g for x in ours if (g := mean_gap_ms(x.arrivals, x.tokens)) is not None]),
        "raw": p50_p95([g for x in raws if (g := mean_gap_ms(x.arrivals, x.tokens)) is not None]),
    }
    gaps = {
        "ours": p50_p95([g for x in ours for g in gaps_ms(x.arrivals)]),
        "raw": p50_p95([g for x in raws for g in gaps_ms(x.arrivals)]),
    }
    pieces = {
        "ours": p50_p95([float(len(x.arrivals)) for x in ours]),
        "raw": p50_p95([float(len(x.arrivals)) for x in raws]),
    }
    ratios = {
        f"{name}_{q}": ratio(figures["ours"][q], figures["raw"][q])
        for name, figures in (("ttft", ttft), ("itl", itl), ("gap", gaps))
        for q in ("p50", "p95")
    }
    # The same prompt on both sides: A_i's prompt is the one B_{i+1} replays. Per-prompt ratios take the
    # prompt's length out of the comparison; their median is a cross-check of the ratio of medians.
    ours_by_question = {r.question_id: r.ours for r in rounds}
    pairs = [(ours_by_question[r.raw_of], r.raw) for r in rounds if r.raw and r.raw_of in ours_by_question]
    paired = {
        "ttft": p50_p95([o.ttft_ms / r.ttft_ms for o, r in pairs if o.ttft_ms and r.ttft_ms]),
        "itl": p50_p95(
            [
                o_gap / r_gap
                for o, r in pairs
                if (o_gap := mean_gap_ms(o.arrivals, o.tokens))
                and (r_gap := mean_gap_ms(r.arrivals, r.tokens))
            ]
        ),
    }
    # How sure the headline ratios are: rounds (each an A and its B) resampled with replacement.
    ci90 = {
        "ttft_p50": bootstrap_ci(rounds, lambda x: x.ttft_ms),
        "itl_p50": bootstrap_ci(rounds, lambda x: mean_gap_ms(x.arrivals, x.tokens)),
    }
    # The model's own generation speed per request (its log), and CPU time per part of the stack.
    model_eval = {
        side: p50_p95([x.server_eval_ms_per_token for x in xs if x.server_eval_ms_per_token is not None])
        for side, xs in (("ours", ours), ("raw", raws))
    }
    ratios["model_eval_p50"] = ratio(model_eval["ours"]["p50"], model_eval["raw"]["p50"])
    parts = sorted({k for x in [*ours, *raws] for k in x.cpu_ms})
    cpu = {
        side: {
            part: {
                "per_reply_ms": p50_p95([x.cpu_ms[part] for x in xs if part in x.cpu_ms]),
                "per_piece_ms": p50_p95(
                    [x.cpu_ms[part] / len(x.arrivals) for x in xs if part in x.cpu_ms and x.arrivals]
                ),
            }
            for part in parts
        }
        for side, xs in (("ours", ours), ("raw", raws))
    }
    timing_keys = ("ttft_ms", "llm_ttft_ms", "retrieval_ms", "generation_ms", "total_ms")
    breakdown: dict[str, dict[str, float | None]] = {
        f"server {k}": p50_p95([r.timings[k] for r in rounds if k in r.timings]) for k in timing_keys
    }
    breakdown["server ttft_ms - llm_ttft_ms (receipt to model call)"] = p50_p95(
        [
            r.timings["ttft_ms"] - r.timings["llm_ttft_ms"]
            for r in rounds
            if {"ttft_ms", "llm_ttft_ms"} <= set(r.timings)
        ]
    )
    breakdown["client TTFT - server ttft_ms (socket, push)"] = p50_p95(
        [
            r.ours.ttft_ms - r.timings["ttft_ms"]
            for r in rounds
            if r.ours.ttft_ms is not None and "ttft_ms" in r.timings
        ]
    )
    for mark in ("ack", "assistant.started", "looking_up", "thinking", "completed"):
        breakdown[f"client t0 -> {mark}"] = p50_p95(
            [r.ours.marks_ms[mark] for r in rounds if mark in r.ours.marks_ms]
        )
    breakdown["client thinking -> first delta"] = p50_p95(
        [
            r.ours.ttft_ms - r.ours.marks_ms["thinking"]
            for r in rounds
            if r.ours.ttft_ms and "thinking" in r.ours.marks_ms
        ]
    )
    cache = {
        "ours_prefix_reused_tokens": p50_p95(
            [float(x.cache_reused) for x in ours if x.cache_reused is not None]
        ),
        "raw_prefix_reused_tokens": p50_p95(
            [float(x.cache_reused) for x in raws if x.cache_reused is not None]
        ),
        "ours_prompt_tokens_evaluated": p50_p95(
            [float(x.cache_evaluated) for x in ours if x.cache_evaluated is not None]
        ),
        "raw_prompt_tokens_evaluated": p50_p95(
            [float(x.cache_evaluated) for x in raws if x.cache_evaluated is not None]
        ),
        "ours_prompt_tokens": p50_p95(
            [
                float(x.cache_reused + x.cache_evaluated)
                for x in ours
                if x.cache_reused is not None and x.cache_evaluated is not None and x.cache_reused >= 0
            ]
        ),
        "raw_prompt_tokens": p50_p95(
            [
                float(x.cache_reused + x.cache_evaluated)
                for x in raws
                if x.cache_reused is not None and x.cache_evaluated is not None and x.cache_reused >= 0
            ]
        ),
    }
    full_hits = sum(1 for x in [*ours, *raws] if x.cache_reused == -1)
    share = ratio(presidio["pii_redact_ms"]["p50"], ttft["raw"]["p50"])
    pattern_share = ratio(presidio["pattern_only_ms"]["p50"], ttft["raw"]["p50"])
    goals = {
        "ttft_p50": verdict(ratios["ttft_p50"], GOAL_RATIO, STRETCH_RATIO, ci90["ttft_p50"]),
        "itl_p50": verdict(ratios["itl_p50"], GOAL_RATIO, STRETCH_RATIO, ci90["itl_p50"]),
        "presidio_share": verdict(share, GOAL_PRESIDIO_SHARE),
    }

    def cell(value: float | None, width: int = 10, digits: int = 1) -> str:
        return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"

    print(
        f"TTFT on {config['model_file']} ({config['quantisation']}, n_ctx {config['n_ctx']}, "
        f"{config['n_threads']} threads), {config['rounds']} rounds A B after {config['warmup']} warm-up, "
        f"{config['cpus']} CPUs"
    )
    print()
    print(
        f"{'measure (ms)':<38}{'ours p50':>10}{'ours p95':>10}{'raw p50':>10}{'raw p95':>10}"
        f"{'ratio p50':>11}{'ratio p95':>11}"
    )
    for label, key, figures in (
        ("TTFT (customer-visible vs raw)", "ttft", ttft),
        ("ITL, per token over the reply", "itl", itl),
        ("single gaps, pooled", "gap", gaps),
    ):
        print(
            f"{label:<38}{cell(figures['ours']['p50'])}{cell(figures['ours']['p95'])}"
            f"{cell(figures['raw']['p50'])}{cell(figures['raw']['p95'])}"
            f"{cell(ratios[key + '_p50'], 11, 3)}{cell(ratios[key + '_p95'], 11, 3)}"
        )
    for key, label in (
        ("ttft", "TTFT, same prompt, per-pair ratio"),
        ("itl", "ITL, same prompt, per-pair ratio"),
    ):
        print(f"{label:<38}{'':>40}{cell(paired[key]['p50'], 11, 3)}{cell(paired[key]['p95'], 11, 3)}")
    print(
        f"{'content pieces per reply':<38}{cell(pieces['ours']['p50'])}{cell(pieces['ours']['p95'])}"
        f"{cell(pieces['raw']['p50'])}{cell(pieces['raw']['p95'])}"
    )
    print()
    print(
        f"goal ours/raw <= {GOAL_RATIO} (stretch {STRETCH_RATIO}):  "
        f"TTFT p50 {goals['ttft_p50']} (90% CI {ci90['ttft_p50'][0]}-{ci90['ttft_p50'][1]}),  "
        f"ITL p50 {goals['itl_p50']} (90% CI {ci90['itl_p50'][0]}-{ci90['itl_p50'][1]})"
    )
    print(
        "the model's own generation time per token (its log): "
        f"ours p50 {cell(model_eval['ours']['p50'], 0, 2)} ms, "
        f"raw p50 {cell(model_eval['raw']['p50'], 0, 2)} ms, "
        f"ratio {ratios['model_eval_p50']}"
    )
    print()
    print(
        f"{'CPU time per request (ms), p50':<32}{'ours/reply':>12}{'raw/reply':>12}"
        f"{'ours/piece':>12}{'raw/piece':>12}"
    )
    for part in parts:
        o, r = cpu["ours"][part], cpu["raw"][part]
        print(
            f"{part:<32}{cell(o['per_reply_ms']['p50'], 12)}{cell(r['per_reply_ms']['p50'], 12)}"
            f"{cell(o['per_piece_ms']['p50'], 12, 2)}{cell(r['per_piece_ms']['p50'], 12, 2)}"
        )
    print()
    print(f"{'where ours spends it (ms)':<58}{'p50':>9}{'p95':>9}")
    for label, row in breakdown.items():
        print(f"{label:<58}{cell(row['p50'], 9)}{cell(row['p95'], 9)}")
    print()
    print(f"{'KV cache check (tokens)':<58}{'p50':>9}{'p95':>9}")
    for label, row in cache.items():
        print(f"{label:<58}{cell(row['p50'], 9, 0)}{cell(row['p95'], 9, 0)}")
    print(f"{'full-prompt cache hits (should be 0)':<58}{full_hits:>9}")
    print()
    redact, pattern = presidio["pii_redact_ms"], presidio["pattern_only_ms"]
    print(
        f"Presidio per message ({presidio['texts']} questions x {presidio['repeats']}, "
        f"{presidio['mean_words']} words on average): pii_redact p50 {redact['p50']} ms, "
        f"p95 {redact['p95']} ms; pattern-only p50 {pattern['p50']} ms, p95 {pattern['p95']} ms"
    )
    print(
        f"share of raw TTFT p50: pii_redact {share}, pattern-only {pattern_share}; "
        f"goal <= {GOAL_PRESIDIO_SHARE}: {goals['presidio_share']}"
    )
    fresh, reused = database["fresh_connection_ms"], database["open_connection_ms"]
    print(
        f"PostgreSQL SELECT 1 on a fresh connection p50 {fresh['p50']} ms (p95 {fresh['p95']}), "
        f"on an open one p50 {reused['p50']} ms (p95 {reused['p95']}); "
        f"CONN_MAX_AGE={config['database_conn_max_age']} opens one per database call of the reply path"
    )
    if config["skipped_questions"]:
        print(f"questions skipped (the model was not asked): {', '.join(config['skipped_questions'])}")
    print(
        json.dumps(
            {
                "bench": "ttft",
                "ttft_ratio_p50": ratios["ttft_p50"],
                "ttft_ratio_p95": ratios["ttft_p95"],
                "itl_ratio_p50": ratios["itl_p50"],
                "itl_ratio_p95": ratios["itl_p95"],
                "presidio_share": share,
                "presidio_pattern_share": pattern_share,
                "goals": goals,
                "ttft_ms": ttft,
                "itl_ms": itl,
                "gap_ms": gaps,
                "pieces": pieces,
                "ratios": ratios,
                "paired_ratios": paired,
                "ratio_ci90": ci90,
                "model_eval_ms_per_token": model_eval,
                "cpu_ms": cpu,
                "breakdown_ms": breakdown,
                "cache": {**cache, "full_prompt_cache_hits": full_hits},
                "presidio": presidio,
                "database": database,
                "rounds": [
                    {
                        "question": r.question_id,
                        **{
                            side: {
                                "ttft_ms": round(x.ttft_ms, 1) if x.ttft_ms is not None else None,
                                "itl_ms": round(g, 2)
                                if (g := mean_gap_ms(x.arrivals, x.tokens)) is not None
                                else None,
                                "max_gap_ms": round(max(gaps_ms(x.arrivals), default=0.0), 1),
                                "pieces": len(x.arrivals),
                                "model_eval_ms_per_token": x.server_eval_ms_per_token,
                                "prompt_tokens_evaluated": x.cache_evaluated,
                            }
                            for side, x in (("ours", r.ours), ("raw", r.raw))
                            if x is not None
                        },
                    }
                    for r in rounds
                ],
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
