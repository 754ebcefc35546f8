"""The agent console in a real Chromium, next to a customer's widget in another, both on the real desk
(Daphne) with a scripted model server, and a Celery worker in this process writing case files.

Customers are on the company's own page (another origin, the demo template's hostile CSS); agents are
signed in to /staff/<slug>/console/ with a real session. What either side shows is compared with what the
database stored.
"""

from __future__ import annotations

import datetime
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from playwright.sync_api import Browser, Page, expect

from apps.accounts.models import Role, Tenant, User
from apps.conversations import services as conversation_services
from apps.conversations.models import Conversation, HandoffReason, Message
from apps.conversations.ownership import HandoffTrigger, conversation_handoff
from apps.handoff import escalation as handoff_escalation
from apps.handoff import services as handoff_services
from apps.handoff.models import Handoff, Note, Presence, Ticket
from apps.knowledge import ingestion
from apps.knowledge import services as knowledge
from apps.telco.services import demo_telco_load
from apps.tools import services as tool_services
from apps.tools.models import RunStatus, ToolRun
from tests.browser.test_widget import (
    ANSWER_MS,
    COMPOSED,
    FIRST_ANSWER_MS,
    QUESTION,
    REFUNDS,
    answered,
    answers_in,
    ask,
    embed,
    is_compose_request,
    shadow,
)
from tests.browser.test_widget_tools import PROPOSAL, TICKET_CALL, in_another_thread, verified_page
from tests.conftest import celery_worker_in_process
from tests.fakes.openai_server import FakeOpenAI

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALWAYS_OPEN = {day: [["00:00", "23:59"]] for day in DAYS}
CLOSED: dict[str, list[list[str]]] = {day: [] for day in DAYS}
PASSWORD = "correct horse battery staple"

# The model's sentences for the first question (each checked against the refund policy, so shown after
# the quoted policy) and for the second; what the customer reads is the quote, then these.
ANSWER = " ".join(COMPOSED)
AGAIN = "And how many days do I have to return a phone for a refund if it is unopened?"
SECOND_ANSWER = answered("An unopened phone can be returned within 30 days of delivery for a full refund.")
ASK_HUMAN = "I want to talk to a human, please."
GOAL = "Return a phone bought last month for a refund."
SUGGESTED = "Hi, I'm from the support team and I can sort out your return."
REPLY = "Hi, this is Alice from Acme. I can arrange the return for you right away."
WAITING_REASON = "Customer asked for a person"
MARKUP = 'My invoice <b>for March</b> looks wrong <img src="x" alt="x">'
NOTE = "Customer bought two phones; only one goes back."

# What the console says for each error code the server sends without a sentence of its own; copied here
# on purpose, so a change of wording is a visible decision.
SENTENCES = {
    "bad_request": "That request wasn't accepted. Check what you entered and try again.",
    "unauthorized": "You were signed out. Reload the page to sign in again.",
    "forbidden": "You don't have permission to do that.",
    "not_found": "That doesn't exist any more, or you can't see it.",
    "rate_limited": "Too many requests. Wait a moment and try again.",
    "message_too_long": "That is too long. Shorten it and try again.",
    "llm_unavailable": "The assistant is unavailable right now.",
    "temporarily_unavailable": "The desk is briefly unavailable. Try again in a few seconds.",
    "interrupted": "That was cut off before it finished. Try again.",
    "conflict": "Someone else changed this first. The console shows the current state.",
}

# The widget's last assistant reply: [status, text], or None.
LAST_REPLY = """
() => {
  const all = document.querySelector('helpdesk-widget').shadowRoot.querySelectorAll('.msg.assistant');
  const node = all[all.length - 1];
  return node ? [node.getAttribute('data-status'), node.querySelector('.text').textContent] : null;
}
"""
# Calls window.__connState with every text the connection line shows.
RECORD_CONNECTION = """
() => {
  const line = document.querySelector('[data-conn]');
  const everything = { childList: true, characterData: true, subtree: true };
  new MutationObserver(() => window.__connState(line.textContent)).observe(line, everything);
}
"""
# Records every [status, text] the console's assistant bubbles show.
RECORD_ASSISTANT = """
() => {
  window.__assistant = [];
  const log = document.querySelector('[data-timeline]');
  const snap = () => log.querySelectorAll('[data-role=assistant]').forEach((node) => {
    const state = [node.getAttribute('data-status'), node.querySelector('.tl-text').textContent];
    const last = window.__assistant[window.__assistant.length - 1];
    if (!last || last[0] !== state[0] || last[1] !== state[1]) window.__assistant.push(state);
  });
  const everything = { subtree: true, childList: true, characterData: true, attributes: true };
  new MutationObserver(snap).observe(log, everything);
}
"""
WIDGET_TEXT = "() => document.querySelector('helpdesk-widget').shadowRoot.textContent"


@dataclass(frozen=True)
class Desk:
    tenant: Tenant
    alice: User
    bob: User

    @property
    def slug(self) -> str:
        return self.tenant.slug


def case_file_model(body: dict[str, Any]) -> str:
    """The scripted model: the case file's two lines when asked for them, the composed sentences of the
    customer's answer when asked to compose one, else nothing (a follow-up rewrite is then not used)."""
    system = str((body.get("messages") or [{}])[0].get("content", ""))
    if system.startswith("You help a support agent"):
        return f"GOAL: {GOAL}\nREPLY: {SUGGESTED}"
    if not is_compose_request(body):
        return ""
    asked = json.dumps(body.get("messages", []))
    return SECOND_ANSWER.rsplit("\n\n", 1)[1] if "unopened" in asked else ANSWER


@pytest.fixture
def desk(make_tenant, make_user, host_site) -> Desk:
    """Acme Mobile: its website is `host_site`, one published refund policy, open around the clock, and two
    agents (Alice signs in with a session; Bob with his password)."""
    tenant = make_tenant(slug="acme", name="Acme Mobile", origins=[host_site.origin])
    version = knowledge.document_upload(
        tenant=tenant,
        actor=None,
        upload=knowledge.Upload(filename="refunds.md", data=REFUNDS),
        title="Refund policy",
    )
    ready = ingestion.version_ingest(version_id=str(version.id))
    assert ready is not None
    knowledge.version_publish(version=ready, actor=None)
    handoff_services.handoff_settings_update(tenant=tenant, hours=ALWAYS_OPEN)
    return Desk(
        tenant=tenant,
        alice=make_user(tenant, roles=[Role.AGENT], username="alice", first_name="Alice"),
        bob=make_user(tenant, roles=[Role.AGENT], username="bob", first_name="Bob", password=PASSWORD),
    )


@pytest.fixture
def case_files(settings, llm: FakeOpenAI) -> Iterator[None]:
    """A worker on the `handoff` queue in this process, whose case files ask the scripted model."""
    settings.LLM_BASE_URL = llm.base_url
    settings.LLM_MODEL = llm.models[0]
    with celery_worker_in_process(queues=("handoff",)):
        yield


@pytest.fixture
def open_console(browser: Browser, asgi_server: str) -> Iterator[Callable[..., Page]]:
    """`open_console(user, slug, query="")`: a browser of its own, signed in as `user`, on the console."""
    contexts = []

    def factory(user: User, slug: str, query: str = "") -> Page:
        context = browser.new_context()
        contexts.append(context)
        client = Client()
        client.force_login(user)
        name = django_settings.SESSION_COOKIE_NAME
        context.add_cookies([{"name": name, "value": client.cookies[name].value, "url": asgi_server}])
        page = context.new_page()
        page.goto(f"{asgi_server}/staff/{slug}/console/{query}")
        expect(connection(page)).to_have_text("Live", timeout=30_000)
        return page

    yield factory
    for context in contexts:
        context.close()


@pytest.fixture
def customer(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    yield context.new_page()
    context.close()


def connection(page: Page):
    return page.locator("[data-conn]")


def inbox(page: Page, section: str):
    return page.get_by_role("navigation", name="Inbox").get_by_role("list", name=section, exact=True)


def transcript(page: Page):
    return page.get_by_role("list", name="Full transcript")


def case_file(page: Page):
    return page.get_by_role("complementary", name="Case file")


def open_widget(page: Page) -> None:
    launcher = page.get_by_role("button", name="Chat with us")
    expect(launcher).to_be_visible(timeout=30_000)
    launcher.click()
    expect(page.get_by_role("dialog", name="Chat with Acme Mobile")).to_be_visible()


def customer_asks_for_a_person(page: Page, asgi_server: str, host_site, desk: Desk) -> Conversation:
    page.goto(embed(host_site, src=f"{asgi_server}/widget.js", key=desk.tenant.widget_key))
    open_widget(page)
    ask(page, ASK_HUMAN)
    expect(shadow(page, ".handoff-note")).to_have_text(
        "We've asked a person to join. They'll reply here as soon as they can.", timeout=FIRST_ANSWER_MS
    )
    return Conversation.objects.get(tenant=desk.tenant)


def queued_chat(tenant: Tenant, text: str, reason: str = HandoffReason.CUSTOMER_REQUEST) -> Conversation:
    """A conversation put in the queue behind the browser's back (in another thread, so its pushes go)."""
    made: list[Conversation] = []

    def work() -> None:
        session = conversation_services.widget_session_open(tenant=tenant, token=None, claim=None)
        conversation_services.message_receive(
            tenant=tenant, claims=session.claims, client_msg_id=f"c-{time.monotonic_ns()}", text=text
        )
        conversation_id = session.claims.conversation_id
        conversation_handoff(
            conversation_id=conversation_id, tenant_id=tenant.id, trigger=HandoffTrigger(reason=reason)
        )
        made.append(Conversation.objects.get(id=conversation_id))

    in_another_thread(work)
    return made[0]


def assistant_chat(tenant: Tenant, text: str) -> Conversation:
    """A conversation the assistant still has: one customer message, no handoff."""
    made: list[Conversation] = []

    def work() -> None:
        session = conversation_services.widget_session_open(tenant=tenant, token=None, claim=None)
        conversation_services.message_receive(
            tenant=tenant, claims=session.claims, client_msg_id=f"c-{time.monotonic_ns()}", text=text
        )
        made.append(Conversation.objects.get(id=session.claims.conversation_id))

    in_another_thread(work)
    return made[0]


def settle_widget(page: Page) -> None:
    """Waits for the widget's last answer to end, so the database is not flushed under its writer."""
    expect(shadow(page, ".msg.assistant").last).to_have_attribute(
        "data-status", re.compile(r"^(complete|interrupted|failed)$"), timeout=ANSWER_MS
    )


# ---- the test --------------------------------------------------------------------------------------


def test_a_customer_asks_for_a_person_mid_answer_an_agent_answers_then_hands_back(
    asgi_server, host_site, desk, llm, case_files, open_console, customer
):
    answers_in(desk.tenant, "compose")  # the model writes after the quote: a long stretch of streaming
    llm.responder = case_file_model
    llm.token_delay = 0.12
    agent = open_console(desk.alice, desk.slug)
    expect(inbox(agent, "Waiting")).to_be_empty()
    expect(
        agent.get_by_text("Nobody is waiting. New conversations appear here as soon as they need a person.")
    ).to_be_visible()
    expect(agent.locator("[data-capacity]")).to_have_text("Holding 0 of 3 conversations")
    expect(agent).to_have_title("Console · Acme Mobile")

    # The customer asks a question; while the answer is still streaming, asks for a person.
    customer.goto(embed(host_site, src=f"{asgi_server}/widget.js", key=desk.tenant.widget_key))
    open_widget(customer)
    ask(customer, QUESTION)
    customer.wait_for_function(
        f"() => {{ const r = ({LAST_REPLY})(); return r && r[1].length > 0; }}",
        timeout=FIRST_ANSWER_MS,
        polling=20,
    )
    ask(customer, ASK_HUMAN)
    state = customer.evaluate(LAST_REPLY)
    assert state[0] == "streaming", "the answer finished before the customer asked: make the fake slower"
    expect(shadow(customer, ".handoff-note")).to_have_text(
        "We've asked a person to join. They'll reply here as soon as they can.", timeout=ANSWER_MS
    )
    settle_widget(customer)
    conversation = Conversation.objects.get(tenant=desk.tenant)
    [handoff] = Handoff.objects.filter(conversation=conversation)
    assert (handoff.status, handoff.reason) == (Handoff.Status.WAITING, HandoffReason.CUSTOMER_REQUEST)
    # The streamed answer never became final: the customer moved on before it ended.
    first = Message.objects.filter(conversation=conversation, role=Message.Role.ASSISTANT).order_by(
        "created_at"
    )
    assert first[0].status in (Message.Status.SUPERSEDED, Message.Status.INTERRUPTED)

    # The agent sees it live: in Waiting, with its reason and a waiting clock, announced, in the title.
    item = inbox(agent, "Waiting").get_by_role("button")
    expect(item).to_have_count(1, timeout=30_000)
    expect(item).to_contain_text(WAITING_REASON)
    expect(item).to_contain_text(re.compile(r"waiting \d+:\d\d"))
    expect(agent).to_have_title("(1 waiting) Console · Acme Mobile")
    expect(agent.locator("[data-announcer]")).to_contain_text(f"New conversation waiting: {WAITING_REASON}")

    # Opening it: focus on the conversation, the case file beside it.
    item.click()
    heading = agent.get_by_role("heading", name="Conversation with Anonymous visitor")
    expect(heading).to_be_focused()
    assert f"conversation={conversation.id}" in agent.url
    card = case_file(agent)
    expect(card.locator('[data-field="goal"]')).to_have_text(GOAL, timeout=60_000)
    expect(card.locator('[data-field="reason"]')).to_have_text(f"{WAITING_REASON} (asked in words)")
    expect(card.locator('[data-field="identity"]')).to_have_text("Not verified (anonymous visitor)")
    # Where each message was written: both of the customer's, and the replies, in the website chat.
    expect(card.locator('[data-field="channels"]')).to_contain_text("Wrote by website chat (2); answered by")
    expect(card.locator('[data-field="suggested_reply"]')).to_have_text(SUGGESTED)
    handoff.refresh_from_db()
    assert handoff.case_file["goal"] == GOAL
    expect(transcript(agent).locator('[data-role="customer"] .tl-text')).to_have_text([QUESTION, ASK_HUMAN])
    expect(agent.get_by_role("textbox", name="Reply to the customer")).to_be_disabled()

    # Claim: the conversation moves to Mine; the reply box opens.
    agent.get_by_role("button", name="Claim", exact=True).click()
    expect(inbox(agent, "Mine").get_by_role("button")).to_have_count(1)
    expect(inbox(agent, "Waiting")).to_be_empty()
    expect(agent).to_have_title("Console · Acme Mobile")
    expect(agent.locator("[data-conv-status]")).to_contain_text("With you.")
    expect(agent.locator("[data-capacity]")).to_have_text("Holding 1 of 3 conversations")
    conversation.refresh_from_db()
    assert (conversation.status, conversation.agent_id) == (Conversation.Status.HUMAN, desk.alice.id)
    expect(shadow(customer, ".handoff-line").last).to_have_text(
        "Alice from Acme Mobile has joined the conversation.", timeout=30_000
    )
    asked_while_owned = len(llm.chat_requests)

    # The suggested reply goes into the box for editing; the agent writes their own and sends with Enter.
    case_file(agent).get_by_role("button", name="Use this reply").click()
    box = agent.get_by_role("textbox", name="Reply to the customer")
    expect(box).to_have_value(SUGGESTED)
    expect(box).to_be_focused()
    box.fill(REPLY)
    box.press("Enter")
    expect(box).to_have_value("")

    # The customer sees it at once, from Alice; the console shows it once.
    agent_bubble = shadow(customer, ".msg.agent")
    expect(agent_bubble.locator(".text")).to_have_text(REPLY, timeout=30_000)
    expect(agent_bubble.locator(".who")).to_have_text("Alice · Acme Mobile")
    mine = transcript(agent).locator('[data-role="agent"]')
    expect(mine).to_have_count(1)
    expect(mine.locator(".tl-text")).to_have_text(REPLY)
    [stored] = Message.objects.filter(conversation=conversation, role=Message.Role.AGENT)
    assert (stored.text, stored.author_id) == (REPLY, desk.alice.id)
    expect(mine).to_have_attribute("data-message-id", str(stored.id))

    # The customer answers the agent: the agent sees it live, and the assistant stays silent.
    answers_before = shadow(customer, ".msg.assistant").count()
    ask(customer, "Great, thank you!")
    expect(transcript(agent).locator('[data-role="customer"] .tl-text').last).to_have_text(
        "Great, thank you!", timeout=30_000
    )
    customer.wait_for_timeout(1500)
    expect(shadow(customer, ".msg.assistant")).to_have_count(answers_before)
    assert len(llm.chat_requests) == asked_while_owned  # not a single request to the model
    assert not Message.objects.filter(
        conversation=conversation, role=Message.Role.ASSISTANT, created_at__gt=stored.created_at
    ).exists()

    # Hand back: the customer is told, the inbox empties, and the assistant answers the next question.
    agent.get_by_role("button", name="Hand back to the assistant").click()
    expect(inbox(agent, "Mine")).to_be_empty()
    expect(agent.locator("[data-conv-status]")).to_contain_text("With the assistant.")
    expect(transcript(agent).locator('[data-type="handoff.returned"]')).to_have_text(
        re.compile("^Handed back to the assistant.")
    )
    expect(shadow(customer, ".handoff-line").last).to_have_text(
        "You're back with the assistant.", timeout=30_000
    )
    assert len(llm.chat_requests) == asked_while_owned
    agent.evaluate(RECORD_ASSISTANT)
    ask(customer, AGAIN)
    answer = shadow(customer, ".msg.assistant").nth(answers_before)
    expect(answer).to_have_attribute("data-status", "complete", timeout=ANSWER_MS)
    expect(answer.locator(".text")).to_have_text(SECOND_ANSWER)
    assert len(llm.chat_requests) > asked_while_owned
    conversation.refresh_from_db()
    assert (conversation.status, conversation.agent_id) == (Conversation.Status.ASSISTANT, None)
    handoff.refresh_from_db()
    assert handoff.status == Handoff.Status.RETURNED
    # The console watched the assistant answer again, from its own timeline.
    expect(transcript(agent).locator('[data-role="assistant"]').last).to_have_attribute(
        "data-status", "complete", timeout=30_000
    )
    expect(transcript(agent).locator('[data-role="assistant"] .tl-text').last).to_have_text(SECOND_ANSWER)
    # ... and while it was being written, piece by piece.
    growing = [
        text for status, text in agent.evaluate("window.__assistant") if status == "streaming" and text
    ]
    assert growing, agent.evaluate("window.__assistant")
    assert all(SECOND_ANSWER.startswith(text) for text in growing), growing
    assert len(growing[0]) < len(SECOND_ANSWER), growing


# ---- two agents, one conversation --------------------------------------------------------------------------


def test_two_agents_claim_at_once_one_wins_and_notes_stay_private(
    browser, asgi_server, host_site, desk, llm, open_console, customer
):
    alice = open_console(desk.alice, desk.slug)
    # Bob signs in through the sign-in page, and lands on the console he asked for.
    bob = browser.new_context().new_page()
    try:
        bob.goto(f"{asgi_server}/staff/{desk.slug}/console/")
        expect(bob).to_have_url(re.compile(r"/accounts/login/\?next=/staff/acme/console/$"))
        bob.get_by_label("Username").fill("bob")
        bob.get_by_label("Password").fill(PASSWORD)
        bob.get_by_role("button", name="Sign in").click()
        expect(bob).to_have_url(re.compile(r"/staff/acme/console/$"))
        expect(connection(bob)).to_have_text("Live", timeout=30_000)

        conversation = customer_asks_for_a_person(customer, asgi_server, host_site, desk)
        for page in (alice, bob):
            item = inbox(page, "Waiting").get_by_role("button")
            expect(item).to_have_count(1, timeout=30_000)
            item.click()
            expect(page.get_by_role("button", name="Claim", exact=True)).to_be_visible()
        # The agents list shows both online.
        expect(alice.locator('[data-agents] li[data-status="online"]')).to_have_count(2)

        # Both press Claim at once: exactly one wins.
        alice.get_by_role("button", name="Claim", exact=True).click()
        bob.get_by_role("button", name="Claim", exact=True).click()
        expect(alice.locator("[data-conv-status]")).to_contain_text(re.compile(r"With (you|Bob)\."))
        expect(bob.locator("[data-conv-status]")).to_contain_text(re.compile(r"With (you|Alice)\."))
        conversation.refresh_from_db()
        winner, loser = (alice, bob) if conversation.agent_id == desk.alice.id else (bob, alice)
        winner_name = "Alice" if winner is alice else "Bob"
        assert conversation.agent_id in (desk.alice.id, desk.bob.id)
        assert Handoff.objects.get(conversation=conversation).agent_id == conversation.agent_id

        expect(loser.get_by_role("alert")).to_have_text(f"{winner_name} has this conversation already.")
        expect(winner.locator("[data-alert]")).to_be_empty()
        expect(inbox(winner, "Mine").get_by_role("button")).to_have_count(1)
        colleagues = inbox(loser, "Colleagues").get_by_role("button")
        expect(colleagues).to_have_count(1)
        expect(colleagues).to_contain_text(f"With {winner_name}")
        expect(inbox(loser, "Waiting")).to_be_empty()
        expect(loser.get_by_role("textbox", name="Reply to the customer")).to_be_disabled()
        expect(loser.locator("[data-reply-hint]")).to_have_text(f"{winner_name} has this conversation.")

        # A private note: the colleague sees it live, marked private; the customer never does.
        winner.get_by_label("Private note").fill(NOTE)
        winner.get_by_role("button", name="Add note").click()
        for page in (winner, loser):
            note = transcript(page).locator(".tl-note")
            expect(note).to_have_count(1, timeout=30_000)
            expect(note.locator(".tl-text")).to_have_text(NOTE)
            expect(note.locator(".tl-private")).to_have_text("Only your team sees this.")
        [stored] = Note.objects.filter(conversation=conversation)
        assert stored.text == NOTE

        box = winner.get_by_role("textbox", name="Reply to the customer")
        box.fill("Hello, I'm looking at your question now.")
        winner.get_by_role("button", name="Send reply").click()
        expect(shadow(customer, ".msg.agent .text")).to_have_text(
            "Hello, I'm looking at your question now.", timeout=30_000
        )
        # The reply reached the loser's console too, once.
        expect(transcript(loser).locator('[data-role="agent"]')).to_have_count(1)
        assert NOTE not in customer.evaluate(WIDGET_TEXT)
        # A new page load replays the stored transcript: the note is not in it either.
        customer.reload()
        expect(shadow(customer, ".msg.agent .text")).to_have_text(
            "Hello, I'm looking at your question now.", timeout=30_000
        )
        assert NOTE not in customer.evaluate(WIDGET_TEXT)

        # Transfer to the colleague: it leaves the winner's Mine for the loser's, and the customer is told.
        loser_name = "Bob" if winner_name == "Alice" else "Alice"
        loser_user = desk.bob if loser is bob else desk.alice
        target = winner.get_by_role("combobox", name="Transfer to")
        target.select_option(value=f"agent:{loser_user.id}")
        winner.get_by_role("button", name="Transfer", exact=True).click()
        expect(inbox(winner, "Mine")).to_be_empty()
        expect(inbox(winner, "Colleagues").get_by_role("button")).to_contain_text(f"With {loser_name}")
        expect(inbox(loser, "Mine").get_by_role("button")).to_have_count(1, timeout=30_000)
        expect(loser.get_by_role("textbox", name="Reply to the customer")).to_be_enabled()
        expect(shadow(customer, ".handoff-line").last).to_have_text(
            f"{loser_name} has taken over the conversation.", timeout=30_000
        )
        conversation.refresh_from_db()
        assert conversation.agent_id == loser_user.id
    finally:
        bob.context.close()


# ---- canned responses, keyboard, URL state -----------------------------------------------------------------


def test_canned_responses_keyboard_and_a_conversation_opened_from_its_url(asgi_server, desk, open_console):
    handoff_services.canned_response_save(
        tenant=desk.tenant,
        title="Refund window",
        shortcut="refund",
        body="You can return a phone within 30 days of delivery for a full refund.",
    )
    handoff_services.canned_response_save(
        tenant=desk.tenant, title="Greeting", shortcut="hello", body="Hi! Thanks for waiting."
    )
    first = queued_chat(desk.tenant, MARKUP)
    second = queued_chat(desk.tenant, "The app logs me out all the time.", HandoffReason.ASSISTANT_ABSTAINED)

    agent = open_console(desk.alice, desk.slug, f"?conversation={first.id}")
    expect(agent.get_by_role("heading", name="Conversation with Anonymous visitor")).to_be_focused()
    # Whatever a customer writes is text, never markup.
    expect(transcript(agent).locator('[data-role="customer"] .tl-text')).to_have_text([MARKUP])
    expect(transcript(agent).locator("img, b")).to_have_count(0)
    waiting = inbox(agent, "Waiting").get_by_role("button")
    expect(waiting).to_have_count(2)
    expect(waiting.nth(0)).to_have_attribute("aria-current", "true")
    agent.get_by_role("button", name="Claim", exact=True).click()
    expect(inbox(agent, "Mine").get_by_role("button")).to_have_count(1)

    # "/" and a shortcut suggest; Enter picks and inserts the text for editing.
    box = agent.get_by_role("textbox", name="Reply to the customer")
    box.click()
    box.press_sequentially("/ref")
    options = agent.get_by_role("listbox", name="Canned responses").get_by_role("option")
    expect(options).to_have_count(1)
    expect(options).to_have_text("/refund Refund window")
    box.press("Enter")
    expect(box).to_have_value("You can return a phone within 30 days of delivery for a full refund.")
    expect(agent.get_by_role("listbox", name="Canned responses")).to_be_hidden()
    # Shift+Enter is a new line; Enter sends.
    box.press("Shift+Enter")
    box.press_sequentially("Anything else?")
    box.press("Enter")
    expect(box).to_have_value("")
    sent = "You can return a phone within 30 days of delivery for a full refund.\nAnything else?"
    mine = transcript(agent).locator('[data-role="agent"]')
    expect(mine.locator(".tl-text")).to_have_text(sent)
    expect(mine).to_have_attribute("data-status", "complete")  # stored: no longer "sending"
    [stored] = Message.objects.filter(conversation=first, role=Message.Role.AGENT)
    assert stored.text == sent
    expect(mine).to_have_attribute("data-message-id", str(stored.id))
    agent.wait_for_timeout(800)
    expect(mine).to_have_count(1)  # the acknowledgement and the stored event made one bubble

    # The list beside the box inserts too.
    agent.get_by_role("combobox", name="Canned response").select_option(label="/hello · Greeting")
    agent.get_by_role("button", name="Insert").click()
    expect(box).to_have_value("Hi! Thanks for waiting.")
    box.fill("")

    # Keyboard only: j / k move through the inbox from the open conversation, Enter opens, focus goes to
    # the conversation; the arrow keys move within the inbox.
    mine = inbox(agent, "Mine").get_by_role("button")
    agent.evaluate("document.activeElement.blur()")
    agent.keyboard.press("k")
    expect(waiting.nth(0)).to_be_focused()
    expect(waiting.nth(0)).to_contain_text("Assistant could not answer")
    agent.keyboard.press("Enter")
    expect(agent.get_by_role("heading", name="Conversation with Anonymous visitor")).to_be_focused()
    expect(transcript(agent).locator('[data-role="customer"] .tl-text')).to_have_text(
        ["The app logs me out all the time."]
    )
    assert f"conversation={second.id}" in agent.url
    expect(waiting.nth(0)).to_have_attribute("aria-current", "true")
    agent.keyboard.press("j")
    expect(mine.nth(0)).to_be_focused()
    agent.keyboard.press("ArrowUp")
    expect(waiting.nth(0)).to_be_focused()
    agent.keyboard.press("ArrowDown")
    expect(mine.nth(0)).to_be_focused()
    agent.keyboard.press("Enter")
    expect(transcript(agent).locator('[data-role="agent"] .tl-text')).to_have_text([sent])

    # Nobody claimed the other one in time: it is escalated, live, and the console says so.
    late = Handoff.objects.get(conversation=second, status=Handoff.Status.WAITING)
    six_minutes_ago = late.created_at - datetime.timedelta(minutes=6)
    Handoff.objects.filter(id=late.id).update(created_at=six_minutes_ago, queued_at=six_minutes_ago)
    in_another_thread(lambda: handoff_escalation.handoff_escalate(handoff_id=late.id))
    expect(waiting.nth(0)).to_contain_text("Escalated", timeout=30_000)
    expect(waiting.nth(0)).to_contain_text("High priority")
    expect(waiting.nth(0)).to_contain_text(re.compile(r"waiting 6:\d\d"))
    expect(agent.locator("[data-announcer]")).to_contain_text(
        "Still waiting, escalated: Assistant could not answer"
    )


# ---- taking over from the assistant, resolving, the case file's states ----------------------------------


def test_an_agent_takes_over_from_the_assistant_and_resolves(asgi_server, desk, open_console):
    conversation = assistant_chat(desk.tenant, "Where is my parcel?")
    agent = open_console(desk.alice, desk.slug, f"?conversation={conversation.id}")
    me = agent.locator(f'[data-agents] li[data-user-id="{desk.alice.id}"]')
    expect(me).to_have_text("Alice (you) · Online · 0 of 3")
    expect(agent.locator(f'[data-agents] li[data-user-id="{desk.bob.id}"]')).to_have_text(
        "Bob · Offline · 0 of 3"
    )
    agent.get_by_role("combobox", name="Your status").select_option("away")
    expect(me).to_have_text("Alice (you) · Away · 0 of 3")
    assert Presence.objects.get(tenant=desk.tenant, user=desk.alice).status == Presence.Status.AWAY
    agent.get_by_role("combobox", name="Your status").select_option("online")
    expect(me).to_have_text("Alice (you) · Online · 0 of 3")
    status = agent.locator("[data-conv-status]")
    expect(status).to_contain_text("With the assistant.")
    expect(case_file(agent)).to_contain_text("No case file: this conversation has not gone to a person yet.")
    expect(agent.get_by_role("button", name="Claim", exact=True)).to_be_hidden()
    expect(agent.locator("[data-reply-hint]")).to_have_text(
        "The assistant has this conversation: take it over to reply."
    )

    agent.get_by_role("button", name="Take over").click()
    expect(status).to_contain_text("With you.")
    expect(inbox(agent, "Mine").get_by_role("button")).to_contain_text("An agent took over")
    expect(transcript(agent).locator('[data-type="handoff.claimed"]')).to_contain_text(
        "Alice took over from the assistant."
    )
    [handoff] = Handoff.objects.filter(conversation=conversation)
    assert (handoff.status, handoff.reason, handoff.agent_id) == (
        Handoff.Status.CLAIMED,
        HandoffReason.AGENT_TAKEOVER,
        desk.alice.id,
    )
    # No worker writes case files in this test: the console says so, and offers a rebuild once it failed.
    expect(case_file(agent).get_by_role("status")).to_have_text("Writing the case file…")
    Handoff.objects.filter(id=handoff.id).update(case_file_status=Handoff.CaseFileStatus.FAILED)
    agent.reload()
    expect(case_file(agent)).to_contain_text("The case file couldn't be written.")
    case_file(agent).get_by_role("button", name="Try again").click()
    expect(case_file(agent).get_by_role("status")).to_have_text("Writing the case file…")
    handoff.refresh_from_db()
    assert handoff.case_file_status == Handoff.CaseFileStatus.PENDING

    agent.get_by_role("button", name="Resolve").click()
    expect(status).to_contain_text("Resolved.")
    expect(inbox(agent, "Mine")).to_be_empty()
    expect(agent.locator("[data-capacity]")).to_have_text("Holding 0 of 3 conversations")
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.RESOLVED
    # Resolving twice is refused, in the server's words.
    agent.get_by_role("button", name="Take over").wait_for(state="hidden")
    agent.evaluate("document.querySelector('[data-action=resolve]').hidden = false")
    agent.get_by_role("button", name="Resolve").click()
    expect(agent.get_by_role("alert")).to_have_text("This conversation is resolved already.")


def test_an_agent_approves_a_change_the_assistant_proposed(
    asgi_server, host_site, make_tenant, make_user, llm, open_console, customer
):
    tenant = make_tenant(slug="acme", name="Acme Mobile", origins=[host_site.origin])
    demo_telco_load(company=tenant.id)
    tool_services.tool_connection_configure(tenant=tenant, adapter="demo")
    tool_services.tool_configure(tenant=tenant, name="ticket_create", enabled=True, approval="agent")
    handoff_services.handoff_settings_update(tenant=tenant, hours=ALWAYS_OPEN)
    alice = make_user(tenant, roles=[Role.AGENT], username="alice", first_name="Alice")
    llm.tool_caller = lambda body: [TICKET_CALL]
    agent = open_console(alice, tenant.slug)

    customer.goto(verified_page(host_site, src=f"{asgi_server}/widget.js", tenant=tenant))
    open_widget(customer)
    ask(customer, "My phone stopped charging, can you open a ticket for me?")
    settle_widget(customer)
    [run] = ToolRun.objects.filter(tenant=tenant)
    assert (run.status, run.approval) == (RunStatus.AWAITING_APPROVAL, "agent")

    item = inbox(agent, "Waiting").get_by_role("button")
    expect(item).to_have_count(1, timeout=30_000)
    expect(item).to_contain_text("A change needs an agent's approval")
    expect(item).to_contain_text("Verified")
    expect(item).to_contain_text("High priority")
    item.click()
    approvals = agent.get_by_role("region", name="Waiting for your approval")
    expect(approvals).to_contain_text(PROPOSAL)
    expect(approvals).to_contain_text("For customer cust-1001")
    line = transcript(agent).locator(f'[data-run-id="{run.id}"]')
    expect(line).to_contain_text("Waiting for approval")

    approvals.get_by_role("button", name=f"Approve: {PROPOSAL}").click()
    expect(approvals).to_be_hidden()
    expect(line).to_contain_text("Queued")
    run.refresh_from_db()
    assert (run.status, run.decided_by_id, run.decided_by_customer) == (RunStatus.QUEUED, alice.id, False)
    expect(agent.locator("[data-announcer]")).to_contain_text(f"Approved: {PROPOSAL}")


# ---- nobody to answer live ---------------------------------------------------------------------------------


def test_outside_hours_the_customer_leaves_an_email_and_the_ticket_shows_in_the_console(
    asgi_server, host_site, desk, llm, open_console, customer
):
    handoff_services.handoff_settings_update(tenant=desk.tenant, hours=CLOSED)
    agent = open_console(desk.alice, desk.slug)
    expect(inbox(agent, "Tickets")).to_be_empty()

    conversation = customer_asks_for_a_person(customer, asgi_server, host_site, desk)
    status = shadow(customer, ".handoff-status")
    expect(status).to_contain_text("Our team is offline right now", timeout=30_000)
    item = inbox(agent, "Waiting").get_by_role("button")
    expect(item).to_have_count(1, timeout=30_000)
    expect(item).to_contain_text("Offline")

    email = customer.get_by_label("Your email")
    email.fill("maria@example.com")
    customer.get_by_role("button", name="Send email address").click()
    expect(shadow(customer, ".ticket-note")).to_contain_text("Ticket #1001", timeout=30_000)
    [ticket] = Ticket.objects.filter(tenant=desk.tenant)
    assert (ticket.number, ticket.email, ticket.conversation_id) == (
        1001,
        "maria@example.com",
        conversation.id,
    )

    tickets = inbox(agent, "Tickets").get_by_role("button")
    expect(tickets).to_have_count(1, timeout=30_000)
    expect(tickets).to_contain_text("#1001 · Anonymous visitor")
    expect(tickets).to_contain_text("Answer by email to m***@example.com")
    expect(agent.locator("[data-announcer]")).to_contain_text("Ticket #1001 opened.")
    tickets.click()
    expect(agent.get_by_role("heading", name="Conversation with Anonymous visitor")).to_be_focused()
    expect(transcript(agent).locator('[data-type="handoff.ticket"]')).to_contain_text("Ticket #1001")
    expect(transcript(agent).locator('[data-type="handoff.status"]')).to_contain_text(
        "Nobody could answer live (outside opening hours)."
    )


# ---- errors and the connection -----------------------------------------------------------------------------


def test_every_error_code_has_a_sentence_and_the_console_reconnects(asgi_server, desk, open_console):
    routes = []

    def forward(ws):
        ws.connect_to_server()
        routes.append(ws)

    agent = open_console(desk.alice, desk.slug)
    agent.route_web_socket(re.compile(r"/ws/console/"), forward)
    agent.reload()
    expect(connection(agent)).to_have_text("Live", timeout=30_000)
    assert len(routes) == 1
    alert = agent.get_by_role("alert")
    for code, sentence in SENTENCES.items():
        frame: dict[str, object] = {"type": "error", "code": code, "message": "", "retryable": False}
        if code == "temporarily_unavailable":
            # About an action: an alert. The socket's own (no message id, close 1013 follows while the desk
            # restarts) only says "Reconnecting…", checked below.
            frame["client_msg_id"] = "c-scripted"
        routes[-1].send(json.dumps(frame))
        expect(alert).to_have_text(sentence)
    routes[-1].send(json.dumps({"type": "error", "code": "temporarily_unavailable", "retryable": True}))
    expect(connection(agent)).to_have_text("Reconnecting…")
    # The server's own sentence wins where it sends one.
    routes[-1].send(
        json.dumps({"type": "error", "code": "conflict", "message": "Bob has this conversation."})
    )
    expect(alert).to_have_text("Bob has this conversation.")
    agent.get_by_role("button", name="Dismiss the message").click()
    expect(agent.locator("[data-alert]")).to_be_empty()
    expect(alert).to_have_count(0)  # an empty alert is not drawn

    # A dropped socket: "Reconnecting…", then live again with the queue read afresh.
    states: list[str] = []
    agent.expose_function("__connState", lambda text: states.append(text))
    agent.evaluate(RECORD_CONNECTION)
    queued_chat(desk.tenant, "Nobody told me my bill doubled.")
    routes[-1].close(code=1011, reason="scripted")
    expect(connection(agent)).to_have_text("Live", timeout=30_000)
    assert "Reconnecting…" in states, states
    assert len(routes) == 2
    expect(inbox(agent, "Waiting").get_by_role("button")).to_have_count(1)

    # Signed out for good: no more reconnects, and the agent is told why.
    routes[-1].close(code=4401, reason="scripted")
    expect(connection(agent)).to_have_text(
        "Live updates stopped: you were signed out or are no longer an agent here. Reload the page."
    )
    agent.wait_for_timeout(1500)
    assert len(routes) == 2


def test_another_tenants_agent_gets_nothing(asgi_server, desk, make_tenant, make_user, open_console):
    other = make_tenant(slug="bravo", name="Bravo Bank")
    stranger = make_user(other, roles=[Role.AGENT], username="mallory")
    queued_chat(desk.tenant, "My invoice for March looks wrong.")
    page = open_console(stranger, other.slug)
    response = page.goto(f"{asgi_server}/staff/{desk.slug}/console/")
    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("That doesn't exist, or you can't see it.")
    close_code = page.evaluate(
        """(url) => new Promise((resolve) => {
          const ws = new WebSocket(url);
          ws.onclose = (event) => resolve(event.code);
        })""",
        asgi_server.replace("http://", "ws://") + f"/ws/console/{desk.slug}/",
    )
    assert close_code == 4403
