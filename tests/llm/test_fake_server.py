"""The fake server's own behaviour that the streaming tests do not cover: non-streaming answers, scripts
applying to chat requests only, and closing while a request hangs."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.fakes.openai_server import FakeOpenAI


def post_chat(fake: FakeOpenAI, body: dict[str, Any], timeout: float = 5) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{fake.base_url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        result: dict[str, Any] = json.load(response)
        return result


def test_non_streaming_completion_with_usage(fake: FakeOpenAI) -> None:
    fake.reply_text = "Yes, within 30 days."
    body = {"model": "test-model", "messages": [{"role": "user", "content": "Can I return it?"}]}

    completion = post_chat(fake, body)

    assert completion["object"] == "chat.completion"
    assert completion["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Yes, within 30 days."},
            "finish_reason": "stop",
        }
    ]
    assert completion["usage"] == {"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8}
    assert fake.chat_requests == [body]


def test_a_script_is_consumed_by_chat_requests_only(fake: FakeOpenAI) -> None:
    fake.script(["error_500"])
    body = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}]}

    with pytest.raises(urllib.error.HTTPError) as failed:
        post_chat(fake, body)
    failed.value.close()
    with urllib.request.urlopen(f"{fake.base_url}/models", timeout=5) as response:
        models = json.load(response)

    assert failed.value.code == 500
    assert [m["id"] for m in models["data"]] == ["test-model"]
    assert post_chat(fake, body)["choices"][0]["message"]["content"] == fake.reply_text


def test_closing_does_not_wait_for_a_hung_request() -> None:
    outcome: list[str] = []

    def caller(fake: FakeOpenAI) -> None:
        try:
            post_chat(fake, {"model": "m", "messages": []}, timeout=30)
        except Exception as exc:  # the connection ends without an answer: RemoteDisconnected or kin
            outcome.append(type(exc).__name__)

    with FakeOpenAI() as fake:
        fake.behaviour = "hang"
        fake.hang_seconds = 60
        thread = threading.Thread(target=caller, args=(fake,), daemon=True)
        thread.start()
        time.sleep(0.2)
        closing = time.monotonic()
    closed_in = time.monotonic() - closing
    thread.join(5)

    assert closed_in < 2
    assert not thread.is_alive()  # the hung handler ended its connection
    assert len(outcome) == 1
