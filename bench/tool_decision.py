"""The time the tool decision adds before a verified customer's first token, against the raw model's TTFT.

    .venv/bin/python bench/tool_decision.py [--rounds 30] [--warmup 3] [--smoke]

When a verified customer's company has tools, the assistant (apps/conversations/assistant.py,
`_decide_tools`) first asks the model, in one unstreamed chat completion offering the tools with
tool_choice "auto" (apps/llm/tooling.py, `tools_decide`), whether a tool should run. That decision runs
concurrently with retrieval; the streamed answer starts only after both. So, beyond whatever of it
retrieval hides, the decision's wall time is added to the customer's wait for the first token.

Starts the two local llama.cpp servers `make run` starts (helpdesk/stack/supervisor.py), each with the
shipped SmolLM2 GGUF file through `helpdesk.stack.embedded.llm_child` (n_ctx, threads), in a temporary
directory:

  answers    the model's own chat template (`chat_format=None`): the streamed answers;
  decisions  `--chat_format chatml-function-calling` (grammar-constrained tool calls): tool decisions.
             A separate server because that format HTML-escapes every prompt, and one server alternating
             decision and answer prompts lost its single prompt cache on every switch.

Before django.setup() (settings read the environment at import) this process's LLM_BASE_URL is pointed at
the answers server and LLM_TOOLS_BASE_URL at the decisions server, as the supervisor does for its children;
Django settings are helpdesk.settings.test (no database, Redis or Presidio connection is made, and the end
of the run checks that no database connection was opened). The five built-in tools (apps.tools.builtin)
are offered, as for a verified customer.

Questions: a fixed set of realistic customer questions, cycled; each goes through `pii_redact` once at
start-up (not timed), as the pipeline redacts at receipt.

Each round, after a warm-up, runs two requests on the same question, interleaved A B A B (CONTRACTS §4),
in the order production sends them (the decision, then the answer):

  A  ours   on the decisions server, through settings.LLM_TOOLS_BASE_URL: `await tools_decide(
            tool_decision_prompt(company, question, history=[]), tools=[the five specs' function_spec()])`:
            wall time around the call, and which tool(s) the model chose.
  B  floor  on the answers server: its time to first token for the streamed plain answer to the same
            question, without tools: the prompt `prompt_build(company, question, passages=[], history=[])`
            builds, sent with the `openai` client and the request arguments the pipeline's `chat_stream`
            sends (taken from the pipeline's code by bench/ttft.py's `floor_request_params`); TTFT is
            request -> first chunk with content. The stream is read to its end (untimed) so the next
            request starts on an idle server. This is what the customer waits for the first token
            without tools; with passages the real answer prompt is longer, so this floor is a lower bound.

Every request waits SETTLE_SECONDS first. Both servers' logs are read after every request: how many
generation passes each ran and how many prompt tokens it evaluated against those it reused from its
cache, in all and in the request's first pass (A's chat format runs several passes per decision: choose
message or function, the name, the arguments; the first pass is the one that reads the new prompt, so its
reused count is the cached prefix). A request that makes the other server work stops the run: it means
the decision and the answer are not on the servers production sends them to.

Reported: p50/p95 of A and B, the ratios A/B (p50, p95), "added before the first token" = A p50 (the
decision is sequential to the streamed answer; its overlap with retrieval is not measured here and only
shortens it by at most the retrieval time), the decisions server's prompt tokens evaluated and reused per
request, the tool choice tally per question, and the configuration (model file, quantisation, n_ctx, both
servers' chat formats and argv, threads, n, llama-cpp-python version). Prints a table, then a last line
of JSON (keys `bench`, `ratio_p50`, `ratio_p95`, `decision_ms_p50`, `floor_ttft_ms_p50`, `choices`,
`config`, and each round's figures).

`--smoke`: 1 warm-up round and 4 measured, for CI (tests/bench/test_tool_decision_smoke.py).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import platform
import re
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stats import argv_value, p50_p95, package_version, ratio  # noqa: E402
from helpdesk.stack import embedded  # noqa: E402
from helpdesk.stack.procs import Child  # noqa: E402

MODEL_ALIAS = "smollm2-135m-instruct"
COMPANY = "Nimbus Telecom"
QUESTIONS = (
    "Where is my order NM-100234?",
    "Why is my bill so high this month?",
    "Is roaming in the EU free?",
    "Can I return a phone I bought last week?",
    "Which plan would be cheaper for me?",
    "My internet keeps dropping, can you open a ticket?",
)
SETTLE_SECONDS = 0.3  # idle before every request, both sides
REQUEST_TIMEOUT_SECONDS = 120.0
PREFIX_HIT = re.compile(r"(\d+) prefix-match hit, remaining (\d+) prompt tokens to eval")
QUANT = re.compile(r"\.((?:I?Q\d[\w]*)|F16|F32|BF16)\.gguf$", re.IGNORECASE)


# ---- statistics --------------------------------------------------------------------------------------


# ---- the model server and Django ---------------------------------------------------------------------


@dataclass
class Server:
    name: str
    base_url: str
    log: Path
    argv: list[str]
    child: Child


@dataclass
class Servers:
    answers: Server  # the model's own chat template: streamed answers (LLM_BASE_URL)
    decisions: Server  # chatml-function-calling: tool decisions (LLM_TOOLS_BASE_URL)


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every `finally`, which stops the servers


@contextmanager
def model_servers() -> Iterator[Servers]:
    """The two local llama.cpp servers as `make run` starts them, and Django settings pointed at them."""
    answers_port = embedded.free_port()
    decisions_port = embedded.free_port()
    while decisions_port == answers_port:
        decisions_port = embedded.free_port()
    answers_url = f"http://127.0.0.1:{answers_port}/v1"
    decisions_url = f"http://127.0.0.1:{decisions_port}/v1"
    # Settings read these once, at import: before django.setup().
    os.environ["DJANGO_SETTINGS_MODULE"] = "helpdesk.settings.test"
    os.environ["LLM_BASE_URL"] = answers_url
    os.environ["LLM_TOOLS_BASE_URL"] = decisions_url
    os.environ["LLM_MODEL"] = MODEL_ALIAS
    os.environ.pop("LLM_TOOLS_MODEL", None)  # the supervisor sets none: decisions use LLM_MODEL
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import django

    django.setup()
    from django.conf import settings

    if answers_url != settings.LLM_BASE_URL or decisions_url != settings.LLM_TOOLS_BASE_URL:
        raise SystemExit(
            f"settings did not take the servers' URLs: LLM_BASE_URL={settings.LLM_BASE_URL!r}, "
            f"LLM_TOOLS_BASE_URL={settings.LLM_TOOLS_BASE_URL!r}"
        )
    with tempfile.TemporaryDirectory(prefix="hdtd-") as tmp:
        children = {
            "answers": (
                answers_url,
                embedded.llm_child(
                    port=answers_port,
                    model_alias=MODEL_ALIAS,
                    log_path=Path(tmp) / "llm.log",
                    env=dict(os.environ),
                    cwd=ROOT,
                ),
            ),
            "decisions": (
                decisions_url,
                embedded.llm_child(
                    port=decisions_port,
                    model_alias=MODEL_ALIAS,
                    log_path=Path(tmp) / "llm-tools.log",
                    env=dict(os.environ),
                    cwd=ROOT,
                    chat_format="chatml-function-calling",
                    name="llm-tools",
                ),
            ),
        }
        started: list[Child] = []
        try:
            for _, child in children.values():
                child.start()
                started.append(child)
            for name, (url, child) in children.items():
                try:
                    embedded.wait_until(
                        lambda url=url: embedded.http_ready(f"{url}/models"),
                        timeout=180,
                        what=f"the {name} server",
                        child=child,
                    )
                except embedded.NotReady as exc:
                    raise SystemExit(
                        f"the {name} model server did not come up: {exc}\n{child.log_tail(40)}"
                    ) from None
            yield Servers(
                *(
                    Server(name=name, base_url=url, log=child.log_path, argv=child.argv, child=child)
                    for name, (url, child) in children.items()
                )
            )
        finally:
            for child in reversed(started):
                child.stop()


# ---- one request each side ---------------------------------------------------------------------------


@dataclass
class ServerWork:
    passes: int = 0  # generation passes the server logged for the request
    evaluated: int = 0  # prompt tokens evaluated, over those passes
    reused: int = 0  # prompt tokens taken from the KV cache, over those passes
    first_evaluated: int = 0  # the first pass's (the one that reads the request's prompt)
    first_reused: int = 0


@dataclass
class Round:
    question: str
    decision_ms: float
    choice: str  # "order_lookup", "a+b" for several calls, "no tool", or "error: ..."
    arguments: list[str]
    decision_prompt_tokens: int
    decision_completion_tokens: int
    floor_ttft_ms: float
    floor_pieces: int
    decision_server: ServerWork
    floor_server: ServerWork


def read_server_log(log: Path, offset: int) -> tuple[ServerWork, int]:
    """A model server's log since `offset` (one request's): its passes and prompt tokens."""
    time.sleep(0.05)
    with log.open("rb") as handle:
        handle.seek(offset)
        data = handle.read()
    work = ServerWork()
    for reused, evaluated in PREFIX_HIT.findall(data.decode("utf-8", errors="replace")):
        if not work.passes:
            work.first_reused, work.first_evaluated = int(reused), int(evaluated)
        work.passes += 1
        work.reused += int(reused)
        work.evaluated += int(evaluated)
    return work, offset + len(data)


async def decision_once(messages: list[Any], tools: list[dict[str, Any]]) -> tuple[float, Any]:
    from apps.llm.tooling import tools_decide

    await asyncio.sleep(SETTLE_SECONDS)
    started = time.perf_counter()
    decision = await tools_decide(messages, tools=tools)
    return (time.perf_counter() - started) * 1000, decision


async def floor_once(client: Any, prompt: list[dict[str, str]], request: dict[str, Any]) -> tuple[float, int]:
    await asyncio.sleep(SETTLE_SECONDS)
    first: float | None = None
    pieces = 0
    started = time.perf_counter()
    stream = await client.chat.completions.create(messages=prompt, **request)
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            if first is None:
                first = time.perf_counter()
            pieces += 1
    if first is None:
        raise SystemExit("the raw model server streamed no text for a plain answer prompt")
    return (first - started) * 1000, pieces


def _choice(decision: Any) -> str:
    if decision.error:
        return f"error: {decision.error}"
    return "+".join(call.name for call in decision.calls) or "no tool"


def _misrouted(request: str, server: Server, work: ServerWork) -> None:
    if work.passes:
        raise SystemExit(
            f"the {server.name} server ran {work.passes} generation pass(es) during {request}: the request "
            f"did not go to the server production sends it to (LLM_BASE_URL / LLM_TOOLS_BASE_URL)"
        )


async def run_rounds(servers: Servers, warmup: int, rounds: int, request: dict[str, Any]) -> list[Round]:
    import openai
    from django.conf import settings

    from apps.conversations.prompting import prompt_build, tool_decision_prompt
    from apps.guardrails.pii import pii_redact
    from apps.tools.registry import tool_specs

    tools = [spec.function_spec() for spec in tool_specs()]
    questions = [pii_redact(q) for q in QUESTIONS]  # as at receipt; loads Presidio once, untimed
    client = openai.AsyncOpenAI(
        base_url=servers.answers.base_url,
        api_key=settings.LLM_API_KEY,
        max_retries=0,
        timeout=REQUEST_TIMEOUT_SECONDS,
    )
    answers_at = servers.answers.log.stat().st_size
    decisions_at = servers.decisions.log.stat().st_size
    measured: list[Round] = []
    try:
        for index in range(warmup + rounds):
            question = questions[index % len(questions)]
            decision_prompt = tool_decision_prompt(company=COMPANY, question=question, history=[])
            answer_prompt = [
                {"role": m.role, "content": m.content}
                for m in prompt_build(company=COMPANY, question=question, passages=[], history=[]).messages
            ]
            decision_ms, decision = await decision_once(decision_prompt, tools)
            decision_work, decisions_at = read_server_log(servers.decisions.log, decisions_at)
            stray, answers_at = read_server_log(servers.answers.log, answers_at)
            _misrouted("a tool decision", servers.answers, stray)
            floor_ms, pieces = await floor_once(client, answer_prompt, request)
            floor_work, answers_at = read_server_log(servers.answers.log, answers_at)
            stray, decisions_at = read_server_log(servers.decisions.log, decisions_at)
            _misrouted("a streamed answer", servers.decisions, stray)
            phase = "warm-up" if index < warmup else f"round {index - warmup + 1}/{rounds}"
            print(
                f"  {phase:<13} decision {decision_ms:7.0f} ms ({_choice(decision)})  "
                f"floor TTFT {floor_ms:6.0f} ms  decision prompt tokens {decision_work.evaluated} evaluated, "
                f"{decision_work.reused} reused  {question}",
                file=sys.stderr,
                flush=True,
            )
            if index < warmup:
                continue
            measured.append(
                Round(
                    question=str(question),
                    decision_ms=decision_ms,
                    choice=_choice(decision),
                    arguments=[call.arguments for call in decision.calls],
                    decision_prompt_tokens=decision.prompt_tokens,
                    decision_completion_tokens=decision.completion_tokens,
                    floor_ttft_ms=floor_ms,
                    floor_pieces=pieces,
                    decision_server=decision_work,
                    floor_server=floor_work,
                )
            )
    finally:
        await client.close()
    return measured


# ---- configuration and report ------------------------------------------------------------------------


def configuration(
    servers: Servers, args: argparse.Namespace, request: dict[str, Any], load_before: float
) -> dict[str, Any]:
    from django.conf import settings

    from apps.llm.tooling import tools_decide
    from apps.tools.registry import tool_specs

    decisions = servers.decisions.argv
    model_file = argv_value(decisions, "--model") or "?"
    quant = QUANT.search(model_file)
    decide_defaults = {
        name: p.default
        for name, p in inspect.signature(tools_decide).parameters.items()
        if name in ("max_tokens",)
    }
    return {
        "model_file": Path(model_file).name,
        "quantisation": quant.group(1) if quant else "?",
        "model_alias": MODEL_ALIAS,
        "n_ctx": int(argv_value(decisions, "--n_ctx") or 0),
        "chat_format": argv_value(decisions, "--chat_format"),  # the decisions server's
        "answers_chat_format": argv_value(servers.answers.argv, "--chat_format"),  # None: model's own
        "n_threads": int(argv_value(decisions, "--n_threads") or 0),
        "servers": {
            server.name: {
                "serves": serves,
                "chat_format": argv_value(server.argv, "--chat_format"),
                "argv": server.argv[1:],
            }
            for server, serves in (
                (servers.answers, "B: streamed answers (LLM_BASE_URL)"),
                (servers.decisions, "A: tool decisions (LLM_TOOLS_BASE_URL)"),
            )
        },
        "llama_cpp_python": package_version("llama_cpp_python"),
        "openai": package_version("openai"),
        "python": platform.python_version(),
        "settings": os.environ["DJANGO_SETTINGS_MODULE"],
        "company": COMPANY,
        "tools": [spec.name for spec in tool_specs()],
        "decision_request": {
            "tool_choice": "auto",
            "temperature": 0,
            "stream": False,
            **decide_defaults,
            "first_token_timeout_s": float(settings.LLM_FIRST_TOKEN_TIMEOUT_SECONDS),
        },
        "floor_request": {k: list(v) if isinstance(v, tuple) else v for k, v in request.items()},
        "floor_prompt": "prompt_build(passages=[], history=[])",
        "questions": list(QUESTIONS),
        "rounds": args.rounds,
        "warmup": args.warmup,
        "settle_s": SETTLE_SECONDS,
        "cpus": os.cpu_count(),
        "smoke": args.smoke,
        "load_average_1min": {"before": load_before, "after": round(os.getloadavg()[0], 2)},
    }


def report(rounds: list[Round], config: dict[str, Any]) -> None:
    decision = p50_p95([r.decision_ms for r in rounds], digits=1)
    floor = p50_p95([r.floor_ttft_ms for r in rounds], digits=1)
    ratios = {"p50": ratio(decision["p50"], floor["p50"]), "p95": ratio(decision["p95"], floor["p95"])}
    tallies: dict[str, Counter[str]] = {}
    for r in rounds:
        tallies.setdefault(r.question, Counter())[r.choice] += 1
    choices = {q: dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))) for q, c in tallies.items()}
    calling = sum(1 for r in rounds if r.choice != "no tool" and not r.choice.startswith("error"))
    errors = sum(1 for r in rounds if r.choice.startswith("error"))
    tokens = {
        "decision_prompt_tokens": p50_p95([float(r.decision_prompt_tokens) for r in rounds], digits=1),
        "decision_completion_tokens": p50_p95(
            [float(r.decision_completion_tokens) for r in rounds], digits=1
        ),
        "decision_server_passes": p50_p95([float(r.decision_server.passes) for r in rounds], digits=1),
        "decision_prompt_tokens_evaluated": p50_p95(
            [float(r.decision_server.evaluated) for r in rounds], digits=1
        ),
        "decision_prompt_tokens_reused": p50_p95([float(r.decision_server.reused) for r in rounds], digits=1),
        "decision_first_pass_tokens_evaluated": p50_p95(
            [float(r.decision_server.first_evaluated) for r in rounds], digits=1
        ),
        "decision_first_pass_tokens_reused": p50_p95(
            [float(r.decision_server.first_reused) for r in rounds], digits=1
        ),
        "floor_server_passes": p50_p95([float(r.floor_server.passes) for r in rounds], digits=1),
        "floor_prompt_tokens_evaluated": p50_p95([float(r.floor_server.evaluated) for r in rounds], digits=1),
        "floor_prompt_tokens_reused": p50_p95([float(r.floor_server.reused) for r in rounds], digits=1),
    }

    def cell(value: float | None, width: int = 10, digits: int = 1) -> str:
        return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"

    print(
        f"Tool decision (decisions server, {config['chat_format']}) vs raw TTFT (answers server, "
        f"{config['answers_chat_format'] or 'model template'}) on {config['model_file']} "
        f"({config['quantisation']}, n_ctx {config['n_ctx']}, {config['n_threads']} threads each, "
        f"llama-cpp-python {config['llama_cpp_python']}), {len(rounds)} rounds A B after "
        f"{config['warmup']} warm-up, {len(config['tools'])} tools offered, {config['cpus']} CPUs"
    )
    print()
    print(f"{'measure (ms)':<50}{'p50':>10}{'p95':>10}{'ratio p50':>11}{'ratio p95':>11}")
    print(f"{'A  ours: tools_decide, wall time':<50}{cell(decision['p50'])}{cell(decision['p95'])}")
    print(
        f"{'B  floor: raw TTFT, streamed plain answer':<50}{cell(floor['p50'])}{cell(floor['p95'])}"
        f"{cell(ratios['p50'], 11, 2)}{cell(ratios['p95'], 11, 2)}"
    )
    print()
    print(
        f"added before the first token: {decision['p50']} ms p50 ({decision['p95']} ms p95), minus whatever "
        f"of it runs alongside retrieval (not measured here); ratio = A / B"
    )
    print(f"the model called a tool in {calling} of {len(rounds)} decisions; {errors} decisions failed")
    evaluated, reused = tokens["decision_prompt_tokens_evaluated"], tokens["decision_prompt_tokens_reused"]
    print(
        f"decisions server, prompt tokens per request (p50): {evaluated['p50']:.0f} evaluated, "
        f"{reused['p50']:.0f} reused from its cache"
    )
    print()
    print(f"{'per request (log and usage), p50':<50}{'p50':>10}{'p95':>10}")
    for label, row in tokens.items():
        print(f"{label:<50}{cell(row['p50'], 10, 0)}{cell(row['p95'], 10, 0)}")
    print()
    print("tool choice per question (count)")
    for question, tally in choices.items():
        print(f"  {question:<52}{', '.join(f'{name} x{n}' for name, n in tally.items())}")
    print(
        json.dumps(
            {
                "bench": "tool_decision",
                "ratio_p50": ratios["p50"],
                "ratio_p95": ratios["p95"],
                "decision_ms_p50": decision["p50"],
                "floor_ttft_ms_p50": floor["p50"],
                "added_before_first_token_ms_p50": decision["p50"],
                "decision_ms": decision,
                "floor_ttft_ms": floor,
                "choices": choices,
                "tool_called": calling,
                "decision_errors": errors,
                "tokens": tokens,
                "rounds": [
                    {
                        "question": r.question,
                        "decision_ms": round(r.decision_ms, 1),
                        "choice": r.choice,
                        "arguments": r.arguments,
                        "decision_prompt_tokens": r.decision_prompt_tokens,
                        "decision_completion_tokens": r.decision_completion_tokens,
                        "decision_server_passes": r.decision_server.passes,
                        "decision_prompt_tokens_evaluated": r.decision_server.evaluated,
                        "decision_prompt_tokens_reused": r.decision_server.reused,
                        "decision_first_pass_tokens_evaluated": r.decision_server.first_evaluated,
                        "decision_first_pass_tokens_reused": r.decision_server.first_reused,
                        "floor_ttft_ms": round(r.floor_ttft_ms, 1),
                        "floor_pieces": r.floor_pieces,
                        "floor_prompt_tokens_evaluated": r.floor_server.evaluated,
                        "floor_prompt_tokens_reused": r.floor_server.reused,
                    }
                    for r in rounds
                ],
                "config": config,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=30, help="measured A B rounds")
    parser.add_argument("--warmup", type=int, default=3, help="rounds run first and discarded")
    parser.add_argument("--smoke", action="store_true", help="CI size: 1 warm-up round, 4 measured")
    args = parser.parse_args()
    if args.smoke:
        args.warmup, args.rounds = 1, 4
    if args.rounds < 1 or args.warmup < 0:
        parser.error("--rounds must be at least 1 and --warmup at least 0")
    signal.signal(signal.SIGTERM, _raise_exit)
    started = time.monotonic()

    with model_servers() as servers:
        import apps.tools.builtin  # noqa: F401  (registers the five built-in tools)
        from bench.ttft import floor_request_params

        _, request = floor_request_params()  # runs its own event loop: before ours
        print(
            f"model servers (answers, decisions) ready in {time.monotonic() - started:.0f}s; "
            f"{args.warmup} warm-up + {args.rounds} rounds",
            file=sys.stderr,
        )
        load_before = round(os.getloadavg()[0], 2)
        rounds = asyncio.run(run_rounds(servers, args.warmup, args.rounds, request))
        config = configuration(servers, args, request, load_before)

    from django.db import connections

    if any(connections[alias].connection is not None for alias in connections):
        raise SystemExit("a database connection was opened: this benchmark is meant to need none")
    report(rounds, config)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted: the model servers were stopped", file=sys.stderr)
        sys.exit(130)
