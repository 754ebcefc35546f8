"""Changes the assistant proposes, in the customer widget: a real Chromium on the company's page (another
origin, the demo template's hostile CSS), a verified customer, the real desk (Daphne) whose scripted model
calls a tool, the demo business system, and a Celery worker in this process where a run must execute.

The card a proposal gets is compared with the stored run, and drawn again from the stored events after a
reload.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
from django.db import connections
from django.template.loader import render_to_string
from playwright.sync_api import Page, expect

from apps.accounts.models import Role, Tenant
from apps.conversations.identity import identity_signature
from apps.conversations.models import Conversation, Message
from apps.telco.models import Ticket
from apps.telco.services import demo_telco_load
from apps.tools import services as tool_services
from apps.tools.models import RunStatus, ToolRun
from tests.browser.test_widget import FIRST_ANSWER_MS, ask, open_widget, settle, shadow
from tests.conftest import celery_worker_in_process
from tests.fakes.openai_server import FakeOpenAI

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CUSTOMER = "cust-1001"  # Maria Lopez in the demo business system
SUBJECT = "Phone does not charge"
PROPOSAL = f"open a support ticket: \u201c{SUBJECT}\u201d"  # the tool's own description of the change
CARD = "Create a support ticket"  # the tool's label
OFFER = f"I can {PROPOSAL} for you. Please confirm below, or cancel."
DECLINED = "OK, I've cancelled that. Nothing was changed."
TICKET_CALL = (
    "ticket_create",
    f'{{"subject": "{SUBJECT}", "description": "The phone stopped charging after the last update."}}',
)
ORDER_CALL = ("order_lookup", '{"order_number": "NM-100234"}')

# Records every state each proposal card shows (its status, its state line, its buttons), so a test can
# see transient states ("Sending…" with both buttons disabled).
RECORD_CARDS = """
() => {
  const root = document.querySelector('helpdesk-widget').shadowRoot;
  window.__cards = [];
  window.__progress = [];
  const snap = () => {
    root.querySelectorAll('.tool').forEach((node) => {
      const state = {
        run: node.getAttribute('data-run-id'),
        status: node.getAttribute('data-status'),
        line: node.querySelector('.tool-state').textContent,
        buttons: Array.from(node.querySelectorAll('button')).map((b) => [b.textContent, b.disabled]),
      };
      const last = window.__cards[window.__cards.length - 1];
      if (!last || JSON.stringify(last) !== JSON.stringify(state)) window.__cards.push(state);
    });
    root.querySelectorAll('.msg.assistant .progress').forEach((node) => {
      const text = node.textContent;
      if (text && window.__progress[window.__progress.length - 1] !== text) window.__progress.push(text);
    });
  };
  snap();
  const everything = { subtree: true, childList: true, characterData: true, attributes: true };
  new MutationObserver(snap).observe(root, everything);
}
"""

FOCUSED = """
() => {
  const inner = document.querySelector('helpdesk-widget').shadowRoot.activeElement;
  return inner && [inner.className, inner.getAttribute('aria-label')];
}
"""


@pytest.fixture
def telco(make_tenant, host_site) -> Tenant:
    """Acme Mobile, whose website is `host_site`, connected to the demo business system, with no published
    policy (the assistant abstains on its own, so what it says is what the tools did)."""
    tenant = make_tenant(slug="acme", name="Acme Mobile", origins=[host_site.origin])
    demo_telco_load(company=tenant.id)
    tool_services.tool_connection_configure(tenant=tenant, adapter="demo")
    tool_services.tool_configure(tenant=tenant, name="ticket_create", enabled=True, approval="customer")
    tool_services.tool_configure(tenant=tenant, name="order_lookup", enabled=True)
    return tenant


@pytest.fixture
def tool_llm(llm: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """`llm` whose tool decisions a test scripts with `tool_llm.tool_caller`; reset afterwards."""
    llm.tool_caller = None
    yield llm
    llm.tool_caller = None


@pytest.fixture
def start_worker_later() -> Iterator:
    """Starts a Celery worker on the tools queue when the test says so (stopped at teardown), so a test
    can first see a run queued and then watch it finish."""
    stack = ExitStack()

    def start() -> None:
        stack.enter_context(celery_worker_in_process(queues=["tools"]))

    yield start
    stack.close()


def verified_page(site, *, src: str, tenant: Tenant) -> str:
    """The company's page (the demo template) with the embed signed for the logged-in customer."""
    issued_at = int(time.time())
    signature = identity_signature(secret=tenant.identity_secret, external_id=CUSTOMER, issued_at=issued_at)
    html: str = render_to_string(
        "widget/demo_host.html",
        {"tenant_name": tenant.name, "widget_key": tenant.widget_key, "script_src": src},
    )
    tag = f'data-widget-key="{tenant.widget_key}"'
    assert html.count(tag) == 1
    html = html.replace(
        tag, f'{tag} data-external-id="{CUSTOMER}" data-issued-at="{issued_at}" data-signature="{signature}"'
    )
    return site.serve(html)


def in_another_thread(work: Callable[[], object]) -> None:
    """Runs `work` the way the agent console would, away from this thread: Playwright's event loop runs
    here, so the desk's push after the commit (async_to_sync) could not."""
    failures: list[BaseException] = []

    def target() -> None:
        try:
            work()
        except BaseException as exc:  # re-raised in the test's thread
            failures.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    if failures:
        raise failures[0]


def card(page: Page):
    return page.get_by_role("group", name=CARD, exact=True)


def confirm_button(page: Page):
    return page.get_by_role("button", name=f"Confirm: {PROPOSAL}", exact=True)


def cancel_button(page: Page):
    return page.get_by_role("button", name=f"Cancel: {PROPOSAL}", exact=True)


def propose_ticket(page: Page, url: str, tenant: Tenant, llm: FakeOpenAI) -> ToolRun:
    """The customer asks; the model proposes a ticket; the widget shows the offer and the card."""
    llm.tool_caller = lambda body: [TICKET_CALL]
    page.goto(url)
    open_widget(page)
    page.evaluate(RECORD_CARDS)
    asked = len(llm.chat_requests)
    ask(page, "My phone stopped charging, can you open a ticket for me?")
    reply = shadow(page, ".msg.assistant").first
    expect(reply).to_have_attribute("data-status", "complete", timeout=FIRST_ANSWER_MS)
    expect(reply.locator(".text")).to_have_text(OFFER)
    [stored] = Message.objects.filter(tenant=tenant, role=Message.Role.ASSISTANT)
    assert stored.text == OFFER

    [run] = ToolRun.objects.filter(tenant=tenant)
    assert (run.tool, run.status, run.approval, run.customer) == (
        "ticket_create",
        RunStatus.AWAITING_APPROVAL,
        "customer",
        CUSTOMER,
    )
    box = card(page)
    expect(box).to_have_attribute("data-run-id", str(run.id))
    expect(box).to_have_attribute("data-status", "awaiting_approval")
    expect(box.locator(".tool-proposal")).to_have_text("O" + PROPOSAL[1:])
    expect(box.locator(".tool-state")).to_have_text("Nothing changes until you confirm.")
    # Real buttons, named for what they do, usable from the keyboard, under the host page's CSS.
    for button in (confirm_button(page), cancel_button(page)):
        expect(button).to_be_visible()
        expect(button).to_be_enabled()
    expect(box.get_by_role("button")).to_have_count(2)
    # The tool's question went to the model with the tool offered; the customer is never an argument.
    [decision] = [b for b in llm.chat_requests[asked:] if b.get("tools")]
    assert sorted(t["function"]["name"] for t in decision["tools"]) == ["order_lookup", "ticket_create"]
    assert CUSTOMER not in str(decision)
    return run


def card_states(page: Page, run: ToolRun) -> list[dict]:
    return [c for c in page.evaluate("window.__cards") if c["run"] == str(run.id)]


def test_the_customer_cancels_a_proposed_ticket_from_the_keyboard(
    page, asgi_server, host_site, telco, tool_llm
):
    url = verified_page(host_site, src=f"{asgi_server}/widget.js", tenant=telco)
    run = propose_ticket(page, url, telco, tool_llm)

    cancel_button(page).focus()
    page.keyboard.press("Enter")

    box = card(page)
    expect(box).to_have_attribute("data-status", "rejected", timeout=30_000)
    expect(box.locator(".tool-state")).to_have_text("Cancelled")
    expect(box.get_by_role("button")).to_have_count(0)
    run.refresh_from_db()
    assert (run.status, run.decided_by_customer) == (RunStatus.REJECTED, True)
    assert not Ticket.objects.filter(company=telco.id).exists()
    # While the decision travelled, both buttons were disabled and the card said so.
    states = card_states(page, run)
    assert {
        "run": str(run.id),
        "status": "awaiting_approval",
        "line": "Sending…",
        "buttons": [["Confirm", True], ["Cancel", True]],
    } in states
    assert states[-1]["line"] == "Cancelled"
    # Focus did not fall off the page with the buttons: it is on the card.
    assert page.evaluate(FOCUSED) == ["tool", CARD]
    # The desk posts the outcome as a message too, exactly as stored.
    notice = shadow(page, ".msg.assistant").nth(1)
    expect(notice).to_have_attribute("data-status", "complete", timeout=30_000)
    expect(notice.locator(".text")).to_have_text(DECLINED)
    assert list(
        Message.objects.filter(tenant=telco, role=Message.Role.ASSISTANT)
        .order_by("created_at")
        .values_list("text", flat=True)
    ) == [OFFER, DECLINED]

    # A reload draws the same card from the stored events, in the same conversation.
    page.reload()
    box = card(page)
    expect(box).to_have_attribute("data-status", "rejected", timeout=30_000)
    expect(box.locator(".tool-state")).to_have_text("Cancelled")
    expect(box.locator(".tool-proposal")).to_have_text("O" + PROPOSAL[1:])
    expect(box.get_by_role("button")).to_have_count(0)
    expect(shadow(page, ".tool")).to_have_count(1)
    expect(shadow(page, ".msg.assistant .text")).to_have_text([OFFER, DECLINED])
    assert Conversation.objects.filter(tenant=telco).count() == 1


def test_the_customer_confirms_and_a_worker_opens_the_ticket(
    page, asgi_server, host_site, telco, tool_llm, start_worker_later
):
    url = verified_page(host_site, src=f"{asgi_server}/widget.js", tenant=telco)
    run = propose_ticket(page, url, telco, tool_llm)

    confirm_button(page).click()

    box = card(page)
    expect(box).to_have_attribute("data-status", "queued", timeout=30_000)
    expect(box.locator(".tool-state")).to_have_text("In progress…")
    expect(box.get_by_role("button")).to_have_count(0)
    run.refresh_from_db()
    assert (run.status, run.decided_by_customer) == (RunStatus.QUEUED, True)
    assert not Ticket.objects.filter(company=telco.id).exists()  # nothing runs without a worker

    start_worker_later()
    expect(box).to_have_attribute("data-status", "done", timeout=60_000)
    expect(box.locator(".tool-state")).to_have_text("Done")
    run.refresh_from_db()
    assert run.status == RunStatus.DONE
    assert re.fullmatch(rf"Ticket TK-\d+ is \w+: {SUBJECT}\.", run.summary), run.summary
    expect(box.locator(".tool-summary")).to_have_text(run.summary)
    [ticket] = Ticket.objects.filter(company=telco.id)
    assert run.summary.startswith(f"Ticket {ticket.number} ")
    # The result is posted as a message as well.
    posted = shadow(page, ".msg.assistant").nth(1)
    expect(posted).to_have_attribute("data-status", "complete", timeout=30_000)
    expect(posted.locator(".text")).to_have_text(run.summary)
    # Every state the card went through, in order ("running" may pass unseen between two pushes).
    statuses = [status for status, _ in itertools.groupby(c["status"] for c in card_states(page, run))]
    assert statuses in (
        ["awaiting_approval", "queued", "running", "done"],
        ["awaiting_approval", "queued", "done"],
    )

    page.reload()
    box = card(page)
    expect(box).to_have_attribute("data-status", "done", timeout=30_000)
    expect(box.locator(".tool-state")).to_have_text("Done")
    expect(box.locator(".tool-summary")).to_have_text(run.summary)
    expect(box.get_by_role("button")).to_have_count(0)
    expect(shadow(page, ".tool")).to_have_count(1)
    expect(shadow(page, ".msg.assistant .text")).to_have_text([OFFER, run.summary])


def test_a_decision_that_lost_the_race_is_explained_and_not_offered_again(
    page, asgi_server, host_site, telco, tool_llm
):
    url = verified_page(host_site, src=f"{asgi_server}/widget.js", tenant=telco)
    run = propose_ticket(page, url, telco, tool_llm)
    # Decided behind the widget's back, with no event to tell it: the desk must refuse the second decision.
    ToolRun.objects.filter(id=run.id).update(status=RunStatus.REJECTED)

    confirm_button(page).click()

    box = card(page)
    expect(box.locator(".tool-error")).to_have_text(
        "That changed while we were working on it. Please try again.", timeout=30_000
    )
    expect(confirm_button(page)).to_be_disabled()
    expect(cancel_button(page)).to_be_disabled()
    expect(box.locator(".tool-state")).to_have_text("Nothing changes until you confirm.")
    run.refresh_from_db()
    assert run.status == RunStatus.REJECTED
    assert run.decided_by_customer is False
    assert not Ticket.objects.filter(company=telco.id).exists()
    expect(shadow(page, ".system.error")).to_have_count(0)  # told on the card, not twice


def test_a_change_an_agent_must_approve_shows_that_it_waits(
    page, asgi_server, host_site, telco, tool_llm, make_user
):
    tool_services.tool_configure(tenant=telco, name="ticket_create", enabled=True, approval="agent")
    tool_llm.tool_caller = lambda body: [TICKET_CALL]
    page.goto(verified_page(host_site, src=f"{asgi_server}/widget.js", tenant=telco))
    open_widget(page)
    ask(page, "My phone stopped charging, can you open a ticket for me?")
    settle(page)
    [run] = ToolRun.objects.filter(tenant=telco)
    assert (run.status, run.approval) == (RunStatus.AWAITING_APPROVAL, "agent")
    box = card(page)
    expect(box).to_have_attribute("data-status", "awaiting_approval")
    expect(box.locator(".tool-state")).to_have_text("Waiting for a colleague to approve")
    expect(box.get_by_role("button")).to_have_count(0)

    agent = make_user(telco, roles=[Role.AGENT])
    in_another_thread(lambda: tool_services.tool_run_decide(run=run, approve=False, actor=agent))
    expect(box).to_have_attribute("data-status", "rejected", timeout=30_000)
    expect(box.locator(".tool-state")).to_have_text("Declined")


def test_a_read_shows_its_progress_line_and_no_card(
    page, asgi_server, host_site, telco, tool_llm, start_worker_later
):
    tool_llm.tool_caller = lambda body: [ORDER_CALL]
    page.goto(verified_page(host_site, src=f"{asgi_server}/widget.js", tenant=telco))
    open_widget(page)
    page.evaluate(RECORD_CARDS)
    ask(page, "Where is my order NM-100234?")
    # The answer waits for the worker, saying what it waits for.
    progress = shadow(page, ".msg.assistant .progress")
    expect(progress).to_have_text("Checking your order…", timeout=FIRST_ANSWER_MS)
    start_worker_later()
    settle(page)
    [run] = ToolRun.objects.filter(tenant=telco)
    assert (run.status, run.approval) == (RunStatus.DONE, "none")
    reply = shadow(page, ".msg.assistant").first
    expect(reply).to_have_attribute("data-status", "complete")
    expect(reply.locator(".text")).to_contain_text(run.summary)
    expect(progress).to_have_text("")
    expect(shadow(page, ".tool")).to_have_count(0)
    assert page.evaluate("window.__cards") == []


def test_a_decision_lost_with_its_connection_can_be_made_again(page, asgi_server, host_site, telco, tool_llm):
    """The socket dies right after Confirm left, before any answer: after the reconnect the buttons work
    again (never a spinner for ever), and the second press counts once."""
    lose = {"next_decision": True}
    sockets = []

    def forward(ws):
        server = ws.connect_to_server()
        sockets.append(ws)

        def to_server(message):
            frame = json.loads(message)
            if frame["type"] == "tool.decide" and lose["next_decision"]:
                lose["next_decision"] = False
                server.close()
                ws.close(code=1001, reason="gone")
                return
            server.send(message)

        ws.on_message(to_server)

    page.route_web_socket(re.compile(r"/ws/widget/"), forward)
    url = verified_page(host_site, src=f"{asgi_server}/widget.js", tenant=telco)
    run = propose_ticket(page, url, telco, tool_llm)
    connected = len(sockets)

    confirm_button(page).click()

    box = card(page)
    expect(confirm_button(page)).to_be_enabled(timeout=30_000)
    assert len(sockets) > connected  # enabled again by the new connection, not by a timer
    expect(box).to_have_attribute("data-status", "awaiting_approval")
    expect(box.locator(".tool-state")).to_have_text("Nothing changes until you confirm.")
    assert "Sending…" in [c["line"] for c in card_states(page, run)]
    run.refresh_from_db()
    assert run.status == RunStatus.AWAITING_APPROVAL

    confirm_button(page).click()
    expect(box).to_have_attribute("data-status", "queued", timeout=30_000)
    run.refresh_from_db()
    assert (run.status, run.decided_by_customer) == (RunStatus.QUEUED, True)
