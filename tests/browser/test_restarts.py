"""Restarts with conversations in flight, in a real Chromium (CONTRACTS §3: PostgreSQL restart, Redis
restart, ASGI server restart). The desk is the fault tests' own (tests/faults/stack.py): its PostgreSQL,
Valkey and Daphne are stopped and started again under a customer whose answer is streaming, and who writes
again while the part is down. Neither the widget nor the console is told anything by the test: they must
reconnect and resume by themselves.

Afterwards, each test asserts CONTRACTS §2: every acknowledged customer message stored exactly once (I1);
every reply complete, or interrupted/failed with its notice on the customer's screen, none left streaming
(I2); the transcript on screen equal to the stored one (I4). While PostgreSQL or Valkey is down, /healthz
answers 503 with Retry-After and names the part.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import pytest
from django.conf import settings as django_settings
from django.test import Client
from playwright.sync_api import Browser, Page, expect

from apps.accounts.models import Role, Tenant, User
from apps.conversations.models import Conversation, Message
from apps.handoff import services as handoff_services
from apps.knowledge import ingestion
from apps.knowledge import services as knowledge
from tests.browser.test_widget import (
    COMPOSED,
    QUESTION,
    QUOTE,
    REFUNDS,
    SENTENCES,
    TRANSCRIPT,
    answers_in,
    ask,
    embed,
    model_composes,
    open_widget,
    shadow,
    stored_transcript,
)
from tests.faults import stack as fault
from tests.faults.stack import FaultStack

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# The fault desk, for this module (fixtures of tests/faults/stack.py).
fault_llm = fault.fault_llm
fault_stack = fault.fault_stack
fault_db = fault.fault_db
fault_llm_reset = fault.fault_llm_reset

# The widget's last assistant reply: [status, text], or None.
LAST_REPLY = """
() => {
  const all = document.querySelector('helpdesk-widget').shadowRoot.querySelectorAll('.msg.assistant');
  const node = all[all.length - 1];
  return node ? [node.getAttribute('data-status'), node.querySelector('.text').textContent] : null;
}
"""
RECONNECTING = "Reconnecting…"
AFTER_MS = 120_000  # the end of a reply cut by a restart: the widget's stall resync (30 s) and a sweep
FOLLOW_UP = "Can I also return the charger?"
AGAIN = "And how many days do I have to return a phone for a refund if it is unopened?"
ALWAYS_OPEN = {day: [["00:00", "23:59"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


@pytest.fixture
def shop(fault_db: FaultStack, make_tenant, host_site) -> Tenant:
    """Acme Mobile on the fault desk: its website is `host_site`, one published refund policy, answers in
    `compose` (the quoted policy at once, then the model's sentences: a long stretch of streaming)."""
    tenant = make_tenant(name="Acme Mobile", origins=[host_site.origin])
    version = knowledge.document_upload(
        tenant=tenant,
        actor=None,
        upload=knowledge.Upload(filename="refunds.md", data=REFUNDS),
        title="Refund policy",
    )
    ready = ingestion.version_ingest(version_id=str(version.id))
    assert ready is not None
    knowledge.version_publish(version=ready, actor=None)
    return answers_in(tenant, "compose")


@pytest.fixture
def slow_model(fault_llm_reset):
    model_composes(fault_llm_reset, " ".join(COMPOSED))
    fault_llm_reset.token_delay = 0.25  # about nine seconds of model sentences after the quote
    return fault_llm_reset


def record_statuses(page: Page) -> None:
    page.evaluate(
        """() => {
          const line = document.querySelector('helpdesk-widget').shadowRoot.querySelector('.status');
          window.__statuses = [line.textContent];
          new MutationObserver(() => {
            if (window.__statuses[window.__statuses.length - 1] !== line.textContent) {
              window.__statuses.push(line.textContent);
            }
          }).observe(line, { subtree: true, childList: true, characterData: true });
        }"""
    )


def widget_on(page: Page, stack: FaultStack, host_site, tenant: Tenant) -> None:
    page.goto(embed(host_site, src=f"{stack.url}/widget.js", key=tenant.widget_key))
    open_widget(page)
    record_statuses(page)


def model_is_writing(page: Page) -> list[str]:
    """Waits until the model's sentences are streaming under the quoted policy; returns [status, text]."""
    writing = f"r && r[0] === 'streaming' && r[1].length > {len(QUOTE) + 2}"
    page.wait_for_function(
        f"() => {{ const r = ({LAST_REPLY})(); return {writing}; }}",
        timeout=120_000,
        polling=50,
    )
    state = page.evaluate(LAST_REPLY)
    assert state[0] == "streaming", "the answer finished before the fault: make the model slower"
    return state


def write_while_down(page: Page, text: str) -> None:
    """The customer writes while the part is down: the message waits in the widget, marked as sending."""
    ask(page, text)
    mine = shadow(page, ".msg.customer").last
    expect(mine.locator(".text")).to_have_text(text)
    expect(mine).to_have_attribute("data-state", "pending")


def settled(page: Page, tenant: Tenant, *, customers: int) -> None:
    """Waits until the desk has stored `customers` messages and finished every reply (none streaming, one
    at least after the last message), and the widget shows exactly that: each message acknowledged, each
    reply in its final state. A reply superseded by the message written during the fault is not shown."""
    deadline = time.monotonic() + AFTER_MS / 1000
    while True:
        stored = list(
            Message.objects.filter(tenant=tenant).order_by("created_at").values_list("role", "status")
        )
        done = (
            sum(role == Message.Role.CUSTOMER for role, _ in stored) == customers
            and bool(stored)
            and stored[-1][0] == Message.Role.ASSISTANT
            and all(status != Message.Status.STREAMING for _, status in stored)
        )
        shown = page.evaluate(
            """() => Array.from(document.querySelector('helpdesk-widget').shadowRoot
                .querySelectorAll('.msg.assistant, .msg.customer'))
                .map((n) => n.getAttribute('data-status') || n.getAttribute('data-state'))"""
        )
        final = all(state in ("complete", "interrupted", "failed", "sent") for state in shown)
        if done and final and page.evaluate(TRANSCRIPT) == stored_transcript(tenant):
            return
        assert time.monotonic() < deadline, (stored, shown, page.evaluate(TRANSCRIPT))
        page.wait_for_timeout(500)


def assert_nothing_lost(page: Page, tenant: Tenant, sent: list[str]) -> list[Message]:
    """CONTRACTS §2 I1, I2 and I4; returns the assistant's replies, oldest first."""
    customer = Message.objects.filter(tenant=tenant, role=Message.Role.CUSTOMER).order_by("created_at")
    assert [m.text for m in customer] == sent  # I1: each acknowledged message once, in order
    assert len({m.client_msg_id for m in customer}) == len(sent)
    replies = list(
        Message.objects.filter(tenant=tenant, role=Message.Role.ASSISTANT)
        .exclude(status=Message.Status.SUPERSEDED)
        .order_by("created_at")
    )
    assert not Message.objects.filter(tenant=tenant, status=Message.Status.STREAMING).exists()  # I2
    for reply in replies:
        node = shadow(page, f'.msg.assistant[data-message-id="{reply.id}"]')
        expect(node).to_have_attribute("data-status", reply.status)
        if reply.status in (Message.Status.INTERRUPTED, Message.Status.FAILED):
            # The customer saw why the answer ended there (I2: never silently missing).
            expect(node.locator(".notice")).to_have_text(SENTENCES[reply.error_code or "interrupted"])
    assert page.evaluate(TRANSCRIPT) == stored_transcript(tenant)  # I4
    return replies


def statuses(page: Page) -> list[str]:
    return page.evaluate("window.__statuses")


def test_the_widget_resumes_by_itself_when_daphne_is_stopped_or_killed_mid_answer(
    page, fault_db, host_site, shop, slow_model
):
    stack = fault_db
    widget_on(page, stack, host_site, shop)
    sent: list[str] = []
    for kill in (False, True):  # SIGTERM, as a deploy stops it; then SIGKILL, as a crash does
        # A question of its own each round: the same one again would be answered from the answer cache.
        question = QUESTION if not kill else AGAIN
        ask(page, question)
        sent.append(question)
        expect(shadow(page, ".msg.customer").last).to_have_attribute("data-state", "sent", timeout=30_000)
        at_fault = model_is_writing(page)

        stack.web_stop(kill=kill)
        expect(shadow(page, ".status")).to_have_text(re.compile(RECONNECTING), timeout=15_000)
        write_while_down(page, FOLLOW_UP if not kill else "Hello?")
        sent.append(FOLLOW_UP if not kill else "Hello?")
        stack.web_start()

        # Back by itself: the message written meanwhile is delivered once and answered; the reply the dead
        # process was writing ends as interrupted, with the text it had stored, and says so.
        settled(page, shop, customers=len(sent))
        expect(shadow(page, ".status")).to_have_text("")
        replies = assert_nothing_lost(page, shop, sent)
        cut = replies[-2]
        assert cut.status == Message.Status.INTERRUPTED, (cut.status, cut.text)
        assert at_fault[1].startswith(cut.text[: len(at_fault[1]) // 2])
        assert replies[-1].status == Message.Status.COMPLETE
    assert RECONNECTING in statuses(page)
    # The widget never showed an error for a restart.
    expect(shadow(page, ".system.error")).to_have_count(0)


def test_the_widget_resumes_by_itself_when_postgres_restarts_mid_answer(
    page, fault_db, host_site, shop, slow_model
):
    stack = fault_db
    widget_on(page, stack, host_site, shop)
    ask(page, QUESTION)
    expect(shadow(page, ".msg.customer")).to_have_attribute("data-state", "sent", timeout=30_000)
    model_is_writing(page)

    stack.postgres_stop()
    try:
        down = stack.health_until(lambda h: h.status == 503 and h.part("database") == "down", timeout=20)
        assert (down.status, down.retry_after, down.part("database")) == (503, "5", "down"), down
        # Written while the database is down: the socket cannot store it, so it stays in the outbox.
        write_while_down(page, FOLLOW_UP)
        expect(shadow(page, ".status")).to_have_text(RECONNECTING, timeout=15_000)
        time.sleep(2)  # a few reconnects meet the outage (each told 1013: try again later)
        expect(shadow(page, ".msg.customer").last).to_have_attribute("data-state", "pending")
    finally:
        stack.postgres_start()
    assert stack.health_until(lambda h: h.part("database") == "ok").part("database") == "ok"

    settled(page, shop, customers=2)
    expect(shadow(page, ".status")).to_have_text("")
    replies = assert_nothing_lost(page, shop, [QUESTION, FOLLOW_UP])
    assert replies[0].status in (Message.Status.COMPLETE, Message.Status.INTERRUPTED), replies[0].status
    assert replies[-1].status == Message.Status.COMPLETE
    assert RECONNECTING in statuses(page)
    expect(shadow(page, ".system.error")).to_have_count(0)
    assert "temporarily_unavailable" in stack.log("daphne") or "1013" in stack.log("daphne")


def test_the_widget_resumes_by_itself_when_valkey_is_killed_mid_answer(
    page, fault_db, host_site, shop, slow_model
):
    stack = fault_db
    widget_on(page, stack, host_site, shop)
    ask(page, QUESTION)
    expect(shadow(page, ".msg.customer")).to_have_attribute("data-state", "sent", timeout=30_000)
    model_is_writing(page)

    stack.valkey_stop(kill=True)
    try:
        down = stack.health_until(lambda h: h.status == 503 and h.part("redis") == "down", timeout=20)
        assert (down.status, down.retry_after, down.part("redis")) == (503, "5", "down"), down
        assert down.part("database") == "ok"
        write_while_down(page, FOLLOW_UP)
        time.sleep(2)
    finally:
        stack.valkey_start()
    assert stack.health_until(lambda h: h.part("redis") == "ok").part("redis") == "ok"

    settled(page, shop, customers=2)
    expect(shadow(page, ".status")).to_have_text("")
    replies = assert_nothing_lost(page, shop, [QUESTION, FOLLOW_UP])
    # Redis only carries the pushes: the writer lives on, so every answer is stored whole and shown whole
    # (the first one superseded, and no longer shown, if the message written meanwhile came before its end).
    assert [reply.status for reply in replies] == [Message.Status.COMPLETE] * len(replies), replies
    expect(shadow(page, ".system.error")).to_have_count(0)


# ---- the agent console -------------------------------------------------------------------------------------


@pytest.fixture
def open_console(browser: Browser, fault_db: FaultStack) -> Iterator[Callable[[User, str], Page]]:
    contexts = []

    def factory(user: User, slug: str) -> Page:
        context = browser.new_context()
        contexts.append(context)
        client = Client()
        client.force_login(user)  # the session row is in the fault desk's database
        name = django_settings.SESSION_COOKIE_NAME
        context.add_cookies([{"name": name, "value": client.cookies[name].value, "url": fault_db.url}])
        page = context.new_page()
        page.goto(f"{fault_db.url}/staff/{slug}/console/")
        expect(page.locator("[data-conn]")).to_have_text("Live", timeout=30_000)
        return page

    yield factory
    for context in contexts:
        context.close()


def test_the_console_reconnects_by_itself_through_a_daphne_kill_and_a_postgres_restart(
    page, fault_db, host_site, shop, slow_model, make_user, open_console
):
    """An agent watches a conversation whose answer is streaming when Daphne is killed, and again when the
    database restarts; the console says it is reconnecting, never shows an error, comes back live, and its
    transcript equals the stored one."""
    stack = fault_db
    handoff_services.handoff_settings_update(tenant=shop, hours=ALWAYS_OPEN)
    alice = make_user(shop, roles=[Role.AGENT], first_name="Alice")
    widget_on(page, stack, host_site, shop)
    ask(page, QUESTION)
    expect(shadow(page, ".msg.customer")).to_have_attribute("data-state", "sent", timeout=30_000)
    conversation = Conversation.objects.get(tenant=shop)

    agent = open_console(alice, shop.slug)
    agent.evaluate(
        """() => {
          const line = document.querySelector('[data-conn]');
          window.__conn = [line.textContent];
          new MutationObserver(() => window.__conn.push(line.textContent))
            .observe(line, { childList: true, characterData: true, subtree: true });
        }"""
    )
    agent.goto(f"{stack.url}/staff/{shop.slug}/console/?conversation={conversation.id}")
    expect(agent.locator("[data-conn]")).to_have_text("Live", timeout=30_000)
    agent.evaluate(
        """() => {
          const line = document.querySelector('[data-conn]');
          window.__conn = [line.textContent];
          new MutationObserver(() => window.__conn.push(line.textContent))
            .observe(line, { childList: true, characterData: true, subtree: true });
        }"""
    )
    model_is_writing(page)

    stack.web_stop(kill=True)
    expect(agent.locator("[data-conn]")).to_have_text(RECONNECTING, timeout=30_000)
    stack.web_start()
    expect(agent.locator("[data-conn]")).to_have_text("Live", timeout=60_000)
    settled(page, shop, customers=1)

    stack.postgres_stop()
    try:
        expect(agent.locator("[data-conn]")).to_have_text(RECONNECTING, timeout=60_000)
        time.sleep(3)  # reconnects meet the outage: each is told 1013, none shows an error
    finally:
        stack.postgres_start()
    expect(agent.locator("[data-conn]")).to_have_text("Live", timeout=60_000)

    assert_nothing_lost(page, shop, [QUESTION])
    conn = agent.evaluate("window.__conn")
    assert RECONNECTING in conn, conn
    assert conn[-1] == "Live", conn
    expect(agent.locator("[data-alert]")).to_have_text("")
    # The console's transcript: what is stored, from the customer's question to the reply's final state.
    timeline = agent.get_by_role("list", name="Full transcript")
    [reply] = Message.objects.filter(tenant=shop, role=Message.Role.ASSISTANT)
    expect(timeline).to_contain_text(QUESTION)
    expect(timeline.locator(f'[data-message-id="{reply.id}"]')).to_have_attribute(
        "data-status", reply.status, timeout=30_000
    )
