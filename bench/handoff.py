"""The two latencies of a human handoff, next to a plain websockets echo round trip in the same run.

    .venv/bin/python bench/handoff.py [--rounds 20] [--warmup 2] [--llm auto|local|fake] [--smoke]

Starts its own stack in a temporary directory: PostgreSQL+pgvector and Valkey (bench/answer_quality.py's
`embedded_django`: the start-up code of `make run`), an LLM server, a Celery worker consuming "tools,handoff"
with the production settings (as `make run` starts its `celery-tools` worker: prefork, concurrency 2),
Daphne serving `helpdesk.asgi:application` with the production settings (as bench/ttft.py and
tests/browser start it), and a plain `websockets` echo server in a process of its own (the floor).

The LLM server: `--llm local` is the local llama.cpp server with the shipped SmolLM2 GGUF file, started as
`make run` starts it (`helpdesk.stack.embedded.llm_child`); `--llm fake` is tests/fakes/openai_server.py's
FakeOpenAI answering every completion after `--fake-delay` seconds (streamed answers at 20 ms a word),
for machines without the model. `auto` (the default) takes the local model when its file is installed.
Which one ran is in the configuration.

Setup, in this process: one company with this Daphne's origin allowed, three demo policies published
(billing, roaming, device returns), opening hours round the clock (so a handoff is queued for a person,
not turned into an email ticket), and one agent signed in (a session made here, read by Daphne: all
processes share DJANGO_SECRET_KEY) whose console socket (/ws/console/<slug>/) stays open all run, so the
agent is online.

Each round, after a warm-up, prepares one conversation, untimed: a fresh widget session (POST
/api/widget/v1/session), the widget socket, `hello`, a customer question from bench/data/questions.jsonl
on those policies (skipping any a turn trigger would hand to a person at once) with an email address
appended (Presidio redacts it at receipt), and the assistant's whole answer (Daphne runs with
LLM_MAX_TOKENS=64: the answer is preparation, and a short one keeps rounds short on a CPU-bound model).
Then, interleaved A1 B1 C A2 B2 (CONTRACTS §4), each after SETTLE_SECONDS of idle:

  A1  ours   handoff -> case file: the widget sends `handoff.request`; from its `ack` (the handoff is
             committed and the customer told) to the agent's console socket receiving `case_file.ready`
             for this conversation: the Celery task published on commit, picked up by the worker, the case
             file built (one non-streamed LLM completion for the goal and the suggested reply,
             apps/handoff/casefile.py), saved, and pushed through the channel layer to the console.
  B1  floor  one round trip of a frame of the same size on a plain `websockets` echo server.
  C   ref.   the raw LLM server: the case file's own completion (its exact request, read back by running
             casefile's assembly in this process against a stub client), replaying the *previous* round's
             request, after the round's assistant answer prompt is sent again for one token (untimed): the
             KV cache then holds what it held when A1's completion arrived (the answer's prompt, nothing of
             the case file's), and the question differs. The model's share of A1.
  (untimed: the agent claims the handoff, `handoff_claim`, and the console watches the conversation)
  A2  ours   agent reply -> widget: the console sends a `reply` frame; until the customer's widget socket
             receives the `agent.message` event: storage, redaction of the reply, the event, the push to
             the conversation's group. The console's `ack` arrival is recorded too.
  B2  floor  as B1.
  (untimed: the agent resolves the conversation; the widget closes)

Reported: p50/p95 of A1, A2, B, C; the ratios A1/B1 and A2/B2 (p50, p95; 90% bootstrap interval over
rounds), A1/C; where A1 spends its time (server timestamps on one host clock: handoff row created ->
case file saved, of which the build itself and the queue, then saved -> console); how often the model's
two lines were usable (goal, reply) against the fallbacks; whether any case file held the email address
(it must not); and the configuration. Prints a table, then a last line of JSON (keys `bench`,
`ratio_case_file_p50`, `ratio_reply_p50`, `case_file_ms`, `reply_ms`, `echo_ms`, ..., `config`).

`--smoke`: 1 warm-up round and 3 measured, for CI (tests/bench/test_handoff_smoke.py).
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
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.answer_quality import POLICIES, QUESTIONS, embedded_django, policy_title  # noqa: E402
from bench.stats import argv_value, bootstrap_ci, p50_p95, package_version, ratio  # noqa: E402
from helpdesk.stack import embedded  # noqa: E402
from helpdesk.stack.procs import Child  # noqa: E402

SERVER_SETTINGS = "helpdesk.settings.production"
DOCUMENTS = ("billing-and-payments.md", "roaming-and-travel.md", "device-returns-and-warranty.md")
PII_EMAIL = "jane.roe@example.com"
AGENT_REPLY = "Hi, I'm Erin from the support team. I've read your conversation and I'm looking into it now."
SETTLE_SECONDS = 0.3  # idle before every measurement, all sides
STEP_TIMEOUT_SECONDS = 300.0  # one step longer than this fails the benchmark (a stuck worker or model)
# The assistant's answer before each handoff is preparation, not measured: a short one keeps rounds short on
# a CPU-bound local model. Daphne gets it as LLM_MAX_TOKENS; the configuration records it.
ANSWER_MAX_TOKENS = 64
RAW_TIMEOUT_SECONDS = 120.0
FAKE_TOKEN_DELAY = 0.02
ECHO_SERVER = """
import asyncio, sys
from websockets.asyncio.server import serve

async def echo(ws):
    async for message in ws:
        await ws.send(message)

async def main():
    async with serve(echo, "127.0.0.1", int(sys.argv[1]), compression=None, ping_interval=None):
        print("echo server listening", flush=True)
        await asyncio.Future()

asyncio.run(main())
"""


# ---- statistics --------------------------------------------------------------------------------------


# ---- the stack ---------------------------------------------------------------------------------------


@dataclass
class Stack:
    web_url: str
    echo_url: str
    llm_kind: str  # "local" or "fake"
    llm_base_url: str
    llm_argv: list[str]
    worker_argv: list[str]
    daphne_argv: list[str]
    children: list[Child]
    tenant: Any  # apps.accounts.models.Tenant
    agent: Any  # apps.accounts.models.User
    session_cookie: str
    questions: list[str]
    chunks: int
    fake: Any = None  # FakeOpenAI when --llm fake

    def log_tails(self, lines: int = 30) -> str:
        return "\n".join(
            f"--- last lines of {c.log_path.name} ---\n{c.log_tail(lines)}" for c in self.children
        )


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every `finally`, which stops the children


def _llm_kind(choice: str) -> str:
    if choice != "auto":
        return choice
    try:
        return "local" if embedded.local_model_path().exists() else "fake"
    except Exception:
        return "fake"


def _questions(smoke: bool) -> list[str]:
    """Answerable questions on the published policies that no turn trigger sends to a person first."""
    from apps.guardrails.sentiment import human_requested, mood, sensitive_topic

    rows = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    by_document: dict[str, list[str]] = {}
    for row in rows:
        text = row["question"]
        triggers = human_requested(text) or sensitive_topic(text) or mood(text).angry
        if row["answerable"] and row["document"] in DOCUMENTS and not triggers:
            by_document.setdefault(row["document"], []).append(text)
    ordered = []  # one document after another, so neighbouring rounds differ
    for depth in range(max(len(v) for v in by_document.values())):
        ordered += [by_document[d][depth] for d in DOCUMENTS if depth < len(by_document.get(d, []))]
    return ordered[:6] if smoke else ordered


def _publish(tenant: Any) -> int:
    from apps.knowledge.models import VersionStatus
    from apps.knowledge.services import Upload, document_upload, version_publish
    from helpdesk.celery import app as celery_app

    chunks = 0
    celery_app.conf.task_always_eager = True  # ingestion inline, here; nothing else of this process queues
    try:
        for name in DOCUMENTS:
            path = POLICIES / name
            version = document_upload(
                tenant=tenant,
                actor=None,
                upload=Upload(filename=path.name, data=path.read_bytes()),
                title=policy_title(path),
            )
            version.refresh_from_db()
            if version.status != VersionStatus.READY:
                raise SystemExit(f"{name} did not ingest: {version.error_code} {version.error_message}")
            version_publish(version=version, actor=None)
            chunks += version.chunk_count
    finally:
        celery_app.conf.task_always_eager = False
    return chunks


def _company(web_url: str) -> tuple[Any, Any, str, int]:
    from django.test import Client

    from apps.accounts.models import Role
    from apps.accounts.services import membership_grant, tenant_create, user_create
    from apps.handoff.services import handoff_settings_update

    tenant = tenant_create(slug="bench-handoff", name="Nimbus Telecom", origins=[web_url])
    chunks = _publish(tenant)
    always = [["00:00", "24:00"]]
    handoff_settings_update(
        tenant=tenant,
        timezone_name="UTC",
        hours={day: always for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
    )
    agent = user_create(username="erin", email="erin@bench.example", password=None, first_name="Erin")
    membership_grant(tenant=tenant, user=agent, role=Role.AGENT)
    client = Client()
    client.force_login(agent)
    return tenant, agent, client.cookies["sessionid"].value, chunks


@contextmanager
def handoff_stack(llm_choice: str, fake_delay: float, smoke: bool) -> Iterator[Stack]:
    kind = _llm_kind(llm_choice)
    web_port, echo_port, llm_port = embedded.free_port(), embedded.free_port(), embedded.free_port()
    web_url = f"http://127.0.0.1:{web_port}"
    log_level = os.environ.get("LOG_LEVEL")  # embedded_django quiets this process; the servers keep theirs
    # Read at import by every process: the agent's session made here must be valid in Daphne.
    os.environ["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(48)
    with ExitStack() as stack:
        fake = None
        if kind == "fake":
            from tests.fakes.openai_server import FakeOpenAI

            fake = stack.enter_context(FakeOpenAI(models=["smollm2-135m-instruct"]))
            fake.token_delay = FAKE_TOKEN_DELAY
            reply = "GOAL: Know the answer to their question.\nREPLY: Thanks for waiting, I'm on it."

            def slow(body: dict[str, Any]) -> str:
                if not body.get("stream"):
                    time.sleep(fake_delay)  # the case file's completion; streams pay per word instead
                return reply

            fake.responder = slow
            os.environ["LLM_BASE_URL"] = fake.base_url
            os.environ["LLM_MODEL"] = fake.models[0]
        else:
            os.environ["LLM_BASE_URL"] = f"http://127.0.0.1:{llm_port}/v1"
        tmp = stack.enter_context(embedded_django("hdho-"))
        from django.conf import settings

        children: list[Child] = []
        try:
            llm_argv: list[str] = []
            if kind == "local":
                llm = embedded.llm_child(
                    port=llm_port,
                    model_alias=settings.LLM_MODEL,
                    log_path=tmp / "log" / "llm.log",
                    env=dict(os.environ),
                    cwd=ROOT,
                )
                llm.start()
                children.append(llm)
                llm_argv = llm.argv
            server_env = {
                **os.environ,  # DATABASE_URL, REDIS_URL, HELPDESK_VAR_DIR, LLM_*, DJANGO_SECRET_KEY
                "DJANGO_SETTINGS_MODULE": SERVER_SETTINGS,
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
                # Plain http on loopback: production's redirect to https would answer every request 301.
                "DJANGO_SECURE_SSL_REDIRECT": "false",
                "LLM_API_KEY": settings.LLM_API_KEY,
                "METRICS_TOKEN": secrets.token_urlsafe(32),  # required by the production settings
                # Every round opens a session and sends a message from 127.0.0.1; the limiter still runs.
                "WIDGET_RATE_SESSIONS_IP": "100000",
                "WIDGET_RATE_IP": "100000",
                "LLM_MAX_TOKENS": str(ANSWER_MAX_TOKENS),
                "PYTHONUNBUFFERED": "1",
            }
            if log_level is None:
                server_env.pop("LOG_LEVEL", None)
            else:
                server_env["LOG_LEVEL"] = log_level
            worker_argv = [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "helpdesk",
                "worker",
                "--loglevel",
                "INFO",
                "--queues",
                "tools,handoff",
                "--concurrency",
                "2",
                "--hostname",
                f"bench-handoff-{os.getpid()}@{socket.gethostname()}",
            ]
            daphne_argv = embedded.web_argv(host="127.0.0.1", port=web_port)
            for name, argv in (
                ("celery-handoff", worker_argv),
                ("daphne", daphne_argv),
                ("echo", [sys.executable, "-c", ECHO_SERVER, str(echo_port)]),
            ):
                child = Child(name, argv, log_path=tmp / "log" / f"{name}.log", env=server_env, cwd=ROOT)
                child.start()
                children.append(child)
            tenant, agent, cookie, chunks = _company(web_url)
            _wait_ready(web_url, settings.LLM_BASE_URL, worker_argv[-1], children)
            yield Stack(
                web_url=web_url,
                echo_url=f"ws://127.0.0.1:{echo_port}",
                llm_kind=kind,
                llm_base_url=settings.LLM_BASE_URL,
                llm_argv=llm_argv,
                worker_argv=worker_argv,
                daphne_argv=daphne_argv,
                children=children,
                tenant=tenant,
                agent=agent,
                session_cookie=cookie,
                questions=_questions(smoke),
                chunks=chunks,
                fake=fake,
            )
        except embedded.NotReady as exc:
            tails = "\n".join(f"--- {c.name} ---\n{c.log_tail()}" for c in children)
            raise SystemExit(f"the stack did not come up: {exc}\n{tails}") from None
        finally:
            for child in reversed(children):
                child.stop()


def _wait_ready(web_url: str, llm_base_url: str, worker_name: str, children: list[Child]) -> None:
    from helpdesk.celery import app as celery_app

    by_name = {c.name: c for c in children}

    def ping() -> None:
        if not celery_app.control.ping(destination=[worker_name], timeout=1.0):
            raise embedded.NotReady("no pong")

    def echo_up() -> None:
        if "listening" not in by_name["echo"].log_tail(5):
            raise embedded.NotReady("not listening yet")

    embedded.wait_until(
        lambda: embedded.http_ready(f"{llm_base_url}/models"),
        timeout=180,
        what="llm",
        child=by_name.get("llm"),
    )
    embedded.wait_until(ping, timeout=120, what="celery handoff worker", child=by_name["celery-handoff"])
    embedded.wait_until(
        lambda: embedded.http_ready(f"{web_url}/accounts/login/"),
        timeout=120,
        what="daphne",
        child=by_name["daphne"],
    )
    embedded.wait_until(echo_up, timeout=30, what="echo server", child=by_name["echo"])


# ---- one round -----------------------------------------------------------------------------------------


@dataclass
class Round:
    question: str
    case_file_ms: float  # handoff.request acked -> console received case_file.ready
    request_ack_ms: float  # handoff.request sent -> ack
    reply_ms: float  # console reply frame sent -> widget received agent.message
    reply_ack_ms: float  # console reply frame sent -> console ack
    echo_1_ms: float
    echo_2_ms: float
    llm_ms: float | None  # C: the raw completion of the previous round's case-file prompt
    llm_tokens: int | None
    created_to_saved_ms: float  # handoff row created -> case file saved (server clock)
    build_ms: float  # the worker's build, as it recorded it
    saved_to_console_ms: float
    goal_source: str
    reply_source: str
    goal: str
    suggested_reply: str
    pii_in_case_file: bool
    status: str
    request: dict[str, Any] = field(default_factory=dict, repr=False)  # the case file's model request


class Socket:
    """A websocket with a receive that skips frames until one matches."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def until(
        self, predicate: Any, timeout: float = STEP_TIMEOUT_SECONDS
    ) -> tuple[dict[str, Any], float]:
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.ws.recv()
                now = time.perf_counter()
                frame = json.loads(raw)
                if frame.get("type") == "error":
                    raise SystemExit(f"a socket answered an error: {frame}")
                if predicate(frame):
                    return frame, now

    async def sync(self) -> None:
        """Everything the server sent before this point is read (a ping answered in order)."""
        marker = f"sync-{uuid.uuid4().hex[:8]}"
        await self.send({"type": "ping", "client_msg_id": marker})
        await self.until(lambda f: f.get("type") == "pong" and f.get("client_msg_id") == marker)


def session_token(stack: Stack) -> str:
    request = urllib.request.Request(  # noqa: S310 (loopback URL we built)
        f"{stack.web_url}/api/widget/v1/session",
        data=json.dumps({"widget_key": stack.tenant.widget_key}).encode(),
        headers={"Content-Type": "application/json", "Origin": stack.web_url},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return str(json.load(response)["token"])
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"POST /api/widget/v1/session answered {exc.code}: {exc.read()[:300]!r}") from None


async def echo_once(echo: Socket, size: int) -> float:
    await asyncio.sleep(SETTLE_SECONDS)
    frame = {"type": "reply", "client_msg_id": uuid.uuid4().hex, "text": "x" * size}
    started = time.perf_counter()
    await echo.send(frame)
    await echo.until(lambda f: f.get("client_msg_id") == frame["client_msg_id"])
    return (time.perf_counter() - started) * 1000


class _Captured(Exception):
    def __init__(self, kwargs: dict[str, Any]) -> None:
        super().__init__("captured")
        self.kwargs = kwargs


def captured_request(handoff_id: str) -> dict[str, Any]:
    """The request the case file sends the model for this handoff: casefile's own assembly run here, with
    `chat_complete` talking to a stub client that keeps the arguments of `chat.completions.create`. Taken
    from the code, not copied, so the floor stays the same request when that code changes."""
    from types import SimpleNamespace

    from apps.handoff import casefile
    from apps.handoff.models import Handoff
    from apps.llm import completion

    def create(**kwargs: Any) -> None:
        raise _Captured(kwargs)

    stub = SimpleNamespace(chat=SimpleNamespace(completions=SimpleNamespace(create=create)))
    real = completion.llm_client
    completion.llm_client = lambda **_: stub  # type: ignore[assignment]
    try:
        handoff = Handoff.objects.select_related("tenant", "conversation__contact").get(id=handoff_id)
        casefile._assemble(handoff)
    except _Captured as captured:
        return {k: v for k, v in captured.kwargs.items() if k != "timeout"}
    finally:
        completion.llm_client = real
    raise SystemExit("the case file asked the model nothing: update bench/handoff.py")


def raw_completion(request: dict[str, Any]) -> tuple[float | None, int | None]:
    """C: the raw server, sent exactly what `chat_complete` sent for the case file."""
    from apps.llm.clients import llm_client

    time.sleep(SETTLE_SECONDS)
    started = time.perf_counter()
    try:
        response = llm_client().chat.completions.create(**request, timeout=RAW_TIMEOUT_SECONDS)
    except Exception as exc:  # a starved model server: the round keeps its other figures
        print(f"raw completion failed: {exc.__class__.__name__}", file=sys.stderr)
        return None, None
    elapsed = (time.perf_counter() - started) * 1000
    usage = getattr(response, "usage", None)
    return elapsed, usage.completion_tokens if usage else None


def answer_prompt(conversation_id: str) -> list[dict[str, str]]:
    from apps.conversations.models import AssistantTrace

    trace = (
        AssistantTrace.objects.filter(message__conversation_id=conversation_id)
        .order_by("-created_at")
        .first()
    )
    return list(trace.prompt) if trace is not None else []


def cache_like_a1(prompt: list[dict[str, str]]) -> None:
    """Untimed: the assistant's answer prompt once more (one token), so the model server's KV cache holds
    what it held when A1's completion came in, not the shared prefix of the case-file prompts."""
    from django.conf import settings

    from apps.llm.clients import llm_client

    if prompt:
        try:
            llm_client().chat.completions.create(
                model=settings.LLM_MODEL,
                messages=prompt,  # type: ignore[arg-type]
                max_tokens=1,
                timeout=RAW_TIMEOUT_SECONDS,
            )
        except Exception as exc:
            print(f"cache reset failed: {exc.__class__.__name__}", file=sys.stderr)


async def one_round(
    stack: Stack, console: Socket, echo: Socket, question: str, previous: dict[str, Any]
) -> Round:
    from channels.db import database_sync_to_async
    from websockets.asyncio.client import connect

    from apps.handoff.models import Handoff
    from apps.handoff.services import conversation_resolve, handoff_claim

    token = await asyncio.to_thread(session_token, stack)
    ws_url = stack.web_url.replace("http://", "ws://") + f"/ws/widget/?key={stack.tenant.widget_key}"
    async with connect(ws_url, origin=stack.web_url, proxy=None, open_timeout=30, ping_interval=None) as raw:  # type: ignore[arg-type]
        widget = Socket(raw)
        await widget.send({"type": "hello", "client_msg_id": "hello", "token": token, "last_seq": 0})
        welcome, _ = await widget.until(lambda f: f["type"] == "welcome")
        conversation_id = str(welcome["conversation_id"])
        await widget.send(
            {
                "type": "message",
                "client_msg_id": uuid.uuid4().hex,
                "text": f"{question} Email me at {PII_EMAIL}.",
            }
        )
        await widget.until(
            lambda f: f["type"] in ("assistant.completed", "assistant.failed", "assistant.interrupted")
        )
        await console.sync()

        # A1: handoff.request acked -> case_file.ready on the console.
        await asyncio.sleep(SETTLE_SECONDS)
        request_id = uuid.uuid4().hex
        sent = time.perf_counter()
        await widget.send({"type": "handoff.request", "client_msg_id": request_id})
        _, acked = await widget.until(lambda f: f["type"] == "ack" and f.get("client_msg_id") == request_id)
        ready, arrived = await console.until(lambda f: f.get("type") == "case_file.ready")
        arrived_wall = time.time()
        case_file_ms = (arrived - acked) * 1000
        if ready["conversation_id"] != conversation_id:
            raise SystemExit(f"case_file.ready for another conversation: {ready}")
        handoff = await database_sync_to_async(Handoff.objects.get)(id=ready["handoff_id"])
        echo_1 = await echo_once(echo, len(AGENT_REPLY))

        request = await database_sync_to_async(captured_request)(str(handoff.id))
        llm_ms, llm_tokens = None, None
        if previous:
            if stack.llm_kind == "local":
                answered = await database_sync_to_async(answer_prompt)(conversation_id)
                await asyncio.to_thread(cache_like_a1, answered)
            llm_ms, llm_tokens = await asyncio.to_thread(raw_completion, previous)

        # Untimed: the agent claims it and the console watches the conversation.
        await database_sync_to_async(handoff_claim)(
            tenant=stack.tenant, handoff_id=handoff.id, agent=stack.agent
        )
        await widget.until(lambda f: f["type"] == "handoff.claimed")
        await console.send({"type": "watch", "conversation_id": conversation_id, "client_msg_id": "w"})
        await console.until(lambda f: f.get("type") == "watching")
        await console.sync()

        # A2: the agent's reply -> the customer's widget.
        await asyncio.sleep(SETTLE_SECONDS)
        reply_id = uuid.uuid4().hex
        frame = {
            "type": "reply",
            "conversation_id": conversation_id,
            "text": AGENT_REPLY,
            "client_msg_id": reply_id,
        }
        ack_task = asyncio.create_task(
            console.until(lambda f: f.get("type") == "ack" and f.get("client_msg_id") == reply_id)
        )
        started = time.perf_counter()
        await console.send(frame)
        message, received = await widget.until(lambda f: f["type"] == "agent.message")
        _, reply_acked = await ack_task
        if message["message"]["text"] != AGENT_REPLY:
            raise SystemExit(f"the widget showed another text: {message}")
        echo_2 = await echo_once(echo, len(AGENT_REPLY))

        await database_sync_to_async(conversation_resolve)(
            tenant=stack.tenant, conversation_id=conversation_id, actor=stack.agent
        )
        await console.send({"type": "unwatch", "client_msg_id": "u"})
        await console.sync()

    case_file = handoff.case_file
    if handoff.case_file_status != "ready" or handoff.case_file_ready_at is None:
        raise SystemExit(f"handoff {handoff.id}: case file {handoff.case_file_status}: {case_file}")
    created_to_saved = (handoff.case_file_ready_at - handoff.created_at).total_seconds() * 1000
    return Round(
        question=question,
        case_file_ms=case_file_ms,
        request_ack_ms=(acked - sent) * 1000,
        reply_ms=(received - started) * 1000,
        reply_ack_ms=(reply_acked - started) * 1000,
        echo_1_ms=echo_1,
        echo_2_ms=echo_2,
        llm_ms=llm_ms,
        llm_tokens=llm_tokens,
        created_to_saved_ms=created_to_saved,
        build_ms=float(case_file["build_ms"]),
        saved_to_console_ms=(arrived_wall - handoff.case_file_ready_at.timestamp()) * 1000,
        goal_source=case_file["goal_source"],
        reply_source=case_file["suggested_reply_source"],
        goal=case_file["goal"],
        suggested_reply=case_file["suggested_reply"],
        pii_in_case_file=PII_EMAIL in json.dumps(case_file) or "jane.roe" in json.dumps(case_file),
        status=handoff.case_file_status,
        request=request,
    )


async def measure(stack: Stack, warmup: int, rounds: int) -> list[Round]:
    from websockets.asyncio.client import connect

    console_url = stack.web_url.replace("http://", "ws://") + f"/ws/console/{stack.tenant.slug}/"
    measured: list[Round] = []
    previous: dict[str, Any] = {}
    async with (
        connect(
            console_url,
            origin=stack.web_url,  # type: ignore[arg-type]
            additional_headers={"Cookie": f"sessionid={stack.session_cookie}"},
            proxy=None,
            open_timeout=30,
            ping_interval=None,
        ) as console_ws,
        connect(stack.echo_url, proxy=None, open_timeout=30, compression=None, ping_interval=None) as echo_ws,
    ):
        console, echo = Socket(console_ws), Socket(echo_ws)
        await console.until(lambda f: f.get("type") == "hello", timeout=30)
        for index in range(warmup + rounds):
            question = stack.questions[index % len(stack.questions)]
            result = await one_round(stack, console, echo, question, previous)
            previous = result.request
            if index >= warmup:
                measured.append(result)
            print(
                f"round {index + 1}/{warmup + rounds}: case file {result.case_file_ms:.0f} ms, "
                f"reply {result.reply_ms:.1f} ms",
                file=sys.stderr,
            )
    return measured


# ---- configuration and report ------------------------------------------------------------------------


def configuration(
    stack: Stack, args: argparse.Namespace, ready_s: float, load_before: float
) -> dict[str, Any]:
    from django.conf import settings

    from apps.handoff import casefile

    model_file = argv_value(stack.llm_argv, "--model")
    return {
        "llm": stack.llm_kind,
        "model": settings.LLM_MODEL,
        "model_file": Path(model_file).name if model_file else None,
        "n_ctx": argv_value(stack.llm_argv, "--n_ctx"),
        "llm_threads": argv_value(stack.llm_argv, "--n_threads"),
        "fake_delay_s": args.fake_delay if stack.llm_kind == "fake" else None,
        "case_file_max_tokens": casefile.LLM_MAX_TOKENS,
        "case_file_llm_deadline_s": casefile.LLM_SECONDS,
        "answer_max_tokens": ANSWER_MAX_TOKENS,
        "worker_argv": stack.worker_argv[1:],
        "worker_queues": argv_value(stack.worker_argv, "--queues"),
        "worker_concurrency": int(argv_value(stack.worker_argv, "--concurrency") or 0),
        "daphne_argv": stack.daphne_argv[1:],
        "server_settings": SERVER_SETTINGS,
        "documents": list(DOCUMENTS),
        "chunks": stack.chunks,
        "questions": len(stack.questions),
        "echo_server": f"websockets {package_version('websockets')} (asyncio, no compression)",
        "websocket_client": f"websockets {package_version('websockets')}",
        "daphne": package_version("daphne"),
        "channels_redis": package_version("channels-redis"),
        "celery": package_version("celery"),
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

    case_file, reply = column("case_file_ms"), column("reply_ms")
    echo_1, echo_2 = column("echo_1_ms"), column("echo_2_ms")
    figures = {
        "case_file": p50_p95(case_file),
        "reply": p50_p95(reply),
        "echo": p50_p95(echo_1 + echo_2),
        "echo_1": p50_p95(echo_1),
        "echo_2": p50_p95(echo_2),
        "llm": p50_p95(column("llm_ms")),
        "request_ack": p50_p95(column("request_ack_ms")),
        "reply_ack": p50_p95(column("reply_ack_ms")),
    }
    ratios = {
        "case_file_p50": ratio(figures["case_file"]["p50"], figures["echo_1"]["p50"]),
        "case_file_p95": ratio(figures["case_file"]["p95"], figures["echo_1"]["p95"]),
        "reply_p50": ratio(figures["reply"]["p50"], figures["echo_2"]["p50"]),
        "reply_p95": ratio(figures["reply"]["p95"], figures["echo_2"]["p95"]),
        "case_file_vs_llm_p50": ratio(figures["case_file"]["p50"], figures["llm"]["p50"]),
        "case_file_vs_llm_p95": ratio(figures["case_file"]["p95"], figures["llm"]["p95"]),
    }
    ci90 = {"case_file_p50": bootstrap_ci(case_file, echo_1), "reply_p50": bootstrap_ci(reply, echo_2)}
    queue = [r.created_to_saved_ms - r.build_ms for r in rounds]
    breakdown = {
        "handoff row created -> case file saved": p50_p95(column("created_to_saved_ms")),
        "  of which the build (build_ms)": p50_p95(column("build_ms")),
        "  of which commit, queue, worker pick-up": p50_p95(queue),
        "case file saved -> console received": p50_p95(column("saved_to_console_ms")),
    }
    sources = {
        "goal_from_model": sum(r.goal_source == "model" for r in rounds),
        "reply_from_model": sum(r.reply_source == "model" for r in rounds),
        "rounds": len(rounds),
    }
    pii = sum(r.pii_in_case_file for r in rounds)

    def cell(value: float | None, width: int = 10, digits: int = 2) -> str:
        return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"

    print(
        f"Handoff latencies vs a websockets echo, {len(rounds)} rounds A1 B1 C A2 B2 after "
        f"{config['warmup']} warm-up; LLM {config['llm']} ({config['model_file'] or config['model']}), "
        f"worker queues {config['worker_queues']} (prefork, concurrency {config['worker_concurrency']}), "
        f"Daphne ({config['server_settings']}), "
        f"{config['cpus']} CPUs"
    )
    print()
    print(f"{'measure (ms)':<52}{'p50':>10}{'p95':>10}{'ratio p50':>11}{'ratio p95':>11}")
    rows = [
        ("A1 handoff acked -> console case_file.ready", "case_file", "case_file_p50", "case_file_p95"),
        ("B1 floor: websockets echo round trip", "echo_1", None, None),
        ("C  reference: raw LLM, the case file's prompt", "llm", None, None),
        ("A1 / C", None, "case_file_vs_llm_p50", "case_file_vs_llm_p95"),
        ("A2 agent reply -> widget agent.message", "reply", "reply_p50", "reply_p95"),
        ("B2 floor: websockets echo round trip", "echo_2", None, None),
        ("   widget handoff.request -> ack", "request_ack", None, None),
        ("   console reply -> console ack", "reply_ack", None, None),
    ]
    for label, key, r50, r95 in rows:
        values = figures[key] if key else {"p50": None, "p95": None}
        print(
            f"{label:<52}{cell(values['p50'])}{cell(values['p95'])}"
            f"{cell(ratios[r50] if r50 else None, 11)}{cell(ratios[r95] if r95 else None, 11)}"
        )
    print()
    print(
        f"ratio = ours / floor of the same round. 90% bootstrap interval of A1/B1 p50: "
        f"{ci90['case_file_p50'][0]}-{ci90['case_file_p50'][1]}, of A2/B2 p50: "
        f"{ci90['reply_p50'][0]}-{ci90['reply_p50'][1]}"
    )
    print()
    print(f"{'where A1 spends it (ms, server timestamps)':<52}{'p50':>10}{'p95':>10}")
    for label, row in breakdown.items():
        print(f"{label:<52}{cell(row['p50'])}{cell(row['p95'])}")
    print()
    print(
        f"model lines usable: goal {sources['goal_from_model']}/{len(rounds)}, reply "
        f"{sources['reply_from_model']}/{len(rounds)} (else the fallbacks); case files holding the "
        f"customer's email: {pii}"
    )
    print()
    print(
        json.dumps(
            {
                "bench": "handoff",
                "ratio_case_file_p50": ratios["case_file_p50"],
                "ratio_case_file_p95": ratios["case_file_p95"],
                "ratio_reply_p50": ratios["reply_p50"],
                "ratio_reply_p95": ratios["reply_p95"],
                "case_file_ms": figures["case_file"],
                "reply_ms": figures["reply"],
                "echo_ms": figures["echo"],
                "echo_1_ms": figures["echo_1"],
                "echo_2_ms": figures["echo_2"],
                "llm_ms": figures["llm"],
                "request_ack_ms": figures["request_ack"],
                "reply_ack_ms": figures["reply_ack"],
                "ratios": ratios,
                "ratio_ci90": ci90,
                "breakdown_ms": breakdown,
                "model_lines": sources,
                "pii_in_case_files": pii,
                "rounds": [
                    {
                        "case_file_ms": round(r.case_file_ms, 3),
                        "reply_ms": round(r.reply_ms, 3),
                        "echo_1_ms": round(r.echo_1_ms, 3),
                        "echo_2_ms": round(r.echo_2_ms, 3),
                        "llm_ms": round(r.llm_ms, 3) if r.llm_ms is not None else None,
                        "llm_tokens": r.llm_tokens,
                        "request_ack_ms": round(r.request_ack_ms, 3),
                        "reply_ack_ms": round(r.reply_ack_ms, 3),
                        "created_to_saved_ms": round(r.created_to_saved_ms, 3),
                        "build_ms": r.build_ms,
                        "saved_to_console_ms": round(r.saved_to_console_ms, 3),
                        "goal_source": r.goal_source,
                        "reply_source": r.reply_source,
                        "question": r.question,
                        "goal": r.goal,
                        "suggested_reply": r.suggested_reply,
                    }
                    for r in rounds
                ],
                "config": config,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=20, help="measured rounds")
    parser.add_argument("--warmup", type=int, default=2, help="rounds run first and discarded")
    parser.add_argument(
        "--llm",
        choices=["auto", "local", "fake"],
        default="auto",
        help="the model server (auto: local if installed)",
    )
    parser.add_argument("--fake-delay", type=float, default=1.0, help="--llm fake: seconds per completion")
    parser.add_argument("--smoke", action="store_true", help="CI size: 1 warm-up round, 3 measured")
    args = parser.parse_args()
    if args.smoke:
        args.warmup, args.rounds = 1, 3
    if args.rounds < 1 or args.warmup < 0:
        parser.error("--rounds must be at least 1 and --warmup at least 0")
    signal.signal(signal.SIGTERM, _raise_exit)
    started = time.monotonic()

    with handoff_stack(args.llm, args.fake_delay, args.smoke) as stack:
        ready_s = time.monotonic() - started
        print(
            f"stack ready in {ready_s:.0f}s (LLM: {stack.llm_kind}); "
            f"{args.warmup} warm-up + {args.rounds} rounds",
            file=sys.stderr,
        )
        load_before = round(os.getloadavg()[0], 2)
        try:
            rounds = asyncio.run(measure(stack, args.warmup, args.rounds))
        except (TimeoutError, OSError) as exc:
            raise SystemExit(f"a round did not finish: {exc!r}\n{stack.log_tails()}") from None
        config = configuration(stack, args, ready_s, load_before)
    report(rounds, config)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted: the servers, PostgreSQL and Valkey were stopped", file=sys.stderr)
        sys.exit(130)
