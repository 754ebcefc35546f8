"""A real Daphne serving the real ASGI application against the test database, and a real Chromium.

Daphne talks to a scripted OpenAI-compatible server (`fake_llm`; tests script it through `llm`), and the
widget tests embed the widget on pages served from other origins (`host_site`, `foreign_site`), the way
a company's website does.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.daphne import daphne_serving
from tests.fakes.openai_server import DEFAULT_REPLY, FakeOpenAI

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeOpenAI]:
    """The model server Daphne streams answers from, for the whole session (Daphne starts once)."""
    with FakeOpenAI(models=["fake-model"]) as fake:
        yield fake


@pytest.fixture
def llm(fake_llm: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """`fake_llm`, reset to a prompt, well-behaved server before and after the test that scripts it."""

    def reset() -> None:
        fake_llm.behaviour = "ok"
        fake_llm.reply_text = DEFAULT_REPLY
        fake_llm.responder = None
        fake_llm.tool_caller = None
        fake_llm.token_delay = 0.0
        fake_llm.cut_after = 3
        fake_llm.hang_seconds = 30.0
        with fake_llm._lock:
            fake_llm._script.clear()

    reset()
    yield fake_llm
    reset()


@pytest.fixture(scope="session")
def asgi_server(django_db_setup, django_db_blocker, fake_llm: FakeOpenAI) -> Iterator[str]:
    from django.db import connection

    with daphne_serving(
        database=connection.settings_dict["NAME"],
        LLM_BASE_URL=fake_llm.base_url,
        LLM_MODEL=fake_llm.models[0],
        # The circuit breaker lives in this one process for the whole session: a test that makes the
        # model fail must not leave it open for the next one (tests/llm covers the breaker itself).
        LLM_BREAKER_FAILURES="1000",
        LLM_RETRY_BACKOFF_SECONDS="0.05",
        # Every page load opens a widget session from 127.0.0.1; the per-IP limit is tested elsewhere.
        WIDGET_RATE_SESSIONS_IP="10000",
        WIDGET_RATE_IP="10000",
    ) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: `.ci/run` installs the Debian package `chromium`")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread from here to the end of the
    # session; the ORM calls browser tests make around it (and pytest-django's flushes) are ordinary
    # synchronous code. The root conftest runs browser tests last, so no other test runs with this set,
    # and the Daphne they start does not inherit it: its async code stays checked.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

    with sync_playwright() as pw:
        # Playwright gives each launch a fresh profile directory and runs it headless.
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()


class HostSite:
    """A company's website on its own origin (not Daphne's): serves the HTML pages a test registers."""

    def __init__(self) -> None:
        self.pages: dict[str, bytes] = {}
        self._count = 0
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                body = pages.get(self.path.split("?", 1)[0])
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def serve(self, html: str) -> str:
        """Publishes `html` at a fresh path; returns its URL."""
        self._count += 1
        path = f"/page-{self._count}.html"
        self.pages[path] = html.encode()
        return self.origin + path

    def __enter__(self) -> HostSite:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="session")
def host_site() -> Iterator[HostSite]:
    """The company's website: tests add its origin to the tenant's allowed origins."""
    with HostSite() as site:
        yield site


@pytest.fixture(scope="session")
def foreign_site() -> Iterator[HostSite]:
    """Somebody else's website, on an origin no tenant allows."""
    with HostSite() as site:
        yield site
