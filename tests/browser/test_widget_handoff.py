"""Going to a person and back, in the customer widget: a real Chromium on the company's page (another
origin, the demo template's hostile CSS), the real desk (Daphne) with its scripted model server, and the
agent side driven through the handoff services, the way the console drives them.

Every state the customer meets has a sentence; what the widget shows is compared with what the desk
stored, and drawn again, identically, from the stored events after a reload.
"""

from __future__ import annotations

import datetime
import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from apps.accounts.models import Role, Tenant, User
from apps.conversations.models import (
    Conversation,
    ConversationEvent,
    ConversationRating,
    HandoffReason,
    Message,
)
from apps.handoff import services as handoff
from apps.handoff.availability import DAYS
from apps.handoff.models import Handoff, Ticket
from apps.knowledge import ingestion
from apps.knowledge import services as knowledge
from tests.browser.test_widget import (
    ANSWER_MS,
    COMPOSED,
    FIRST_ANSWER_MS,
    FOCUSED,
    QUESTION,
    REFUNDS,
    answered,
    answers_in,
    ask,
    compose_requests,
    embed,
    model_composes,
    open_widget,
    settle,
    shadow,
    stored_transcript,
)
from tests.browser.test_widget_tools import in_another_thread

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def company(make_tenant, host_site) -> Tenant:
    """Acme Mobile, whose website is `host_site`, with one published policy to cite."""
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
    # `compose`: an answer asks the model, so "the assistant stays silent" means it is not even asked.
    answers_in(tenant, "compose")
    return tenant


# What the customer reads; copied here on purpose, so a change of wording is a visible decision.
REQUESTED = "We've asked a person to join. They'll reply here as soon as they can."
NOBODY = "Nobody from our team is available right now."
STOPPED = "Stopped — a person is taking over."
RESOLVED = "This conversation was marked as resolved."
THANKS = "Thanks for your feedback."
HANDOVER = (
    "Of course. I'm bringing in a person from our team; they'll see everything we've discussed, "
    "so you won't have to repeat yourself."
)
GROUNDED = COMPOSED[0]  # the model's checked sentence after the quoted policy
GROUNDED_ANSWER = answered(GROUNDED)
# Nothing in the published policies answers this: the assistant says so and offers a person.
UNANSWERED = "Do you sell gift cards for birthdays?"
ABSTAINED = (
    "I couldn't find this in our published policies, so I'd rather not guess. "
    "Would you like me to connect you with a person?"
)

# Every message bubble as [role, text], comparable with `stored_transcript`.
TRANSCRIPT = """
() => Array.from(document.querySelector('helpdesk-widget').shadowRoot.querySelectorAll('.log .msg')).map(
  (node) => [
    ['customer', 'agent'].find((role) => node.classList.contains(role)) || 'assistant',
    node.querySelector('.text').textContent,
  ]
)
"""

# Everything the conversation shows, in order: what a reload must draw again exactly.
LOG = """
() => Array.from(document.querySelector('helpdesk-widget').shadowRoot.querySelector('.log').children).map(
  (node) => [node.className, node.getAttribute('data-status') || node.getAttribute('data-state') || '',
             node.textContent]
)
"""

# Records every state of each assistant reply, to see that nothing changes once it was stopped.
RECORD_REPLIES = """
() => {
  const root = document.querySelector('helpdesk-widget').shadowRoot;
  window.__states = [];
  const snap = () => {
    root.querySelectorAll('.msg.assistant').forEach((node) => {
      const state = {
        id: node.getAttribute('data-message-id'),
        status: node.getAttribute('data-status'),
        text: node.querySelector('.text').textContent,
        notice: node.querySelector('.notice').textContent,
        buttons: node.querySelectorAll('button').length,
      };
      const last = window.__states.filter((s) => s.id === state.id).pop();
      if (!last || JSON.stringify(last) !== JSON.stringify(state)) window.__states.push(state);
    });
  };
  snap();
  const everything = { subtree: true, childList: true, characterData: true, attributes: true };
  new MutationObserver(snap).observe(root, everything);
}
"""


def all_day() -> tuple[dict[str, list[list[str]]], str]:
    """Hours that are open now: every day, all day (in a zone where it is not the day's last minute)."""
    zone = "UTC" if timezone.now().strftime("%H:%M") < "23:58" else "Etc/GMT+2"
    return {day: [["00:00", "23:59"]] for day in DAYS}, zone


def set_open(tenant: Tenant) -> None:
    hours, zone = all_day()
    handoff.handoff_settings_update(tenant=tenant, hours=hours, timezone_name=zone)


def agent(tenant: Tenant, make_user: Callable[..., User], name: str, *, online: bool = False) -> User:
    user = make_user(tenant, roles=[Role.AGENT], first_name=name)
    if online:
        # Online means a console socket and a fresh heartbeat (apps/handoff/availability.py).
        def connect() -> None:
            handoff.presence_connect(tenant=tenant, user=user)
            handoff.presence_set(tenant=tenant, user=user, status="online")

        in_another_thread(connect)
    return user


def as_agent(work: Callable[[], Any]) -> Any:
    """Runs an agent's action away from Playwright's thread (its push after commit needs a free loop)."""
    result: list[Any] = []
    in_another_thread(lambda: result.append(work()))
    return result[0]


def the_conversation(tenant: Tenant) -> Conversation:
    return Conversation.objects.get(tenant=tenant)


def status_event(conversation: Conversation) -> dict[str, Any]:
    return (
        ConversationEvent.objects.filter(conversation=conversation, type="handoff.status").latest("seq").data
    )


def assistant_messages(tenant: Tenant) -> list[Message]:
    return list(Message.objects.filter(tenant=tenant, role=Message.Role.ASSISTANT).order_by("created_at"))


def reload_draws_the_same(page: Page) -> None:
    """A new page load rebuilds exactly what the customer saw from the stored events."""
    before = page.evaluate(LOG)
    page.reload()
    expect(shadow(page, ".log > *")).to_have_count(len(before), timeout=30_000)
    deadline = time.monotonic() + 15
    while page.evaluate(LOG) != before and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert page.evaluate(LOG) == before


def ask_for_a_person(page: Page, llm) -> None:
    """An answer without a source offers a person; the customer takes the offer."""
    ask(page, UNANSWERED)
    reply = shadow(page, ".msg.assistant").first
    expect(reply).to_have_attribute("data-status", "complete", timeout=FIRST_ANSWER_MS)
    expect(reply.locator(".text")).to_have_text(ABSTAINED)
    expect(reply.locator(".citations")).to_be_hidden()
    offer = reply.get_by_role("button", name="Talk to a person")
    expect(offer).to_be_visible()
    offer.click()
    expect(shadow(page, ".handoff-note")).to_have_text(REQUESTED, timeout=30_000)
    expect(offer).to_have_count(0)


def test_waiting_in_line_is_told_honestly_and_the_customer_can_go_back_to_the_assistant(
    page, asgi_server, host_site, company, llm, make_user
):
    set_open(company)
    agent(company, make_user, "Nina", online=True)
    page.goto(embed(host_site, src=f"{asgi_server}/widget.js", key=company.widget_key))
    open_widget(page)
    ask_for_a_person(page, llm)

    card = shadow(page, ".handoff-status")
    expect(card).to_have_attribute("data-state", "queued", timeout=30_000)
    conversation = the_conversation(company)
    assert conversation.status == Conversation.Status.WAITING
    [waiting] = Handoff.objects.filter(conversation=conversation)
    assert (waiting.status, waiting.reason) == (Handoff.Status.WAITING, HandoffReason.CUSTOMER_REQUEST)
    # One agent online with room for three: first in line, the typical two minutes before a claim.
    assert status_event(conversation) == {
        "state": "queued",
        "position": 1,
        "expected_wait_seconds": 120,
        "handoff_id": str(waiting.id),
    }
    expect(card.locator(".handoff-text")).to_have_text(
        "You're number 1 in line. A person usually joins within about 2 minutes."
    )
    expect(shadow(page, ".sub")).to_have_text("Waiting for a person")

    # Writing while waiting: stored for the person, and the assistant stays silent.
    asked = len(llm.chat_requests)
    ask(page, "Hello, is anybody there?")
    expect(shadow(page, ".msg.customer").last).to_have_attribute("data-state", "sent", timeout=30_000)
    page.wait_for_timeout(1000)
    assert len(llm.chat_requests) == asked
    assert len(assistant_messages(company)) == 1
    expect(page.get_by_label("Your message")).to_be_enabled()

    # "Continue with the assistant", from the keyboard.
    keep = page.get_by_role("button", name="Continue with the assistant", exact=True)
    keep.focus()
    page.keyboard.press("Enter")
    expect(shadow(page, ".handoff-line").last).to_have_text(
        "OK, you're back with the assistant.", timeout=30_000
    )
    expect(keep).to_have_count(0)
    assert page.evaluate(FOCUSED) == "hd-input"  # focus did not fall off the page with the button
    expect(shadow(page, ".sub")).to_have_text("Support chat")
    conversation.refresh_from_db()
    waiting.refresh_from_db()
    assert conversation.status == Conversation.Status.ASSISTANT
    assert waiting.status == Handoff.Status.CANCELLED

    # The assistant answers again.
    model_composes(llm, GROUNDED)
    ask(page, QUESTION)
    again = shadow(page, ".msg.assistant").nth(1)
    expect(again).to_have_attribute("data-status", "complete", timeout=ANSWER_MS)
    expect(again.locator(".text")).to_have_text(GROUNDED_ANSWER)
    assert len(llm.chat_requests) > asked
    assert page.evaluate(TRANSCRIPT) == stored_transcript(company)
    reload_draws_the_same(page)


def test_nobody_online_after_hours_leaves_an_email_and_gets_a_ticket(
    browser, asgi_server, host_site, company, llm
):
    # Open two days from now only: closed now, and the desk knows when it opens.
    now = timezone.now().astimezone(datetime.UTC)
    day = DAYS[(now.weekday() + 2) % 7]
    handoff.handoff_settings_update(tenant=company, hours={day: [["09:00", "10:00"]]}, timezone_name="UTC")
    opens = datetime.datetime.combine(now.date() + datetime.timedelta(days=2), datetime.time(9), datetime.UTC)
    # A visitor elsewhere: the opening time is shown in their language and their time zone.
    context = browser.new_context(locale="en-GB", timezone_id="America/New_York")
    page = context.new_page()
    try:
        page.goto(embed(host_site, src=f"{asgi_server}/widget.js", key=company.widget_key))
        open_widget(page)
        ask(page, "Can I talk to a person please?")
        reply = shadow(page, ".msg.assistant").first
        expect(reply).to_have_attribute("data-status", "complete", timeout=FIRST_ANSWER_MS)
        expect(reply.locator(".text")).to_have_text(HANDOVER)
        expect(shadow(page, ".handoff-note")).to_have_text(REQUESTED, timeout=30_000)

        card = shadow(page, ".handoff-status")
        expect(card).to_have_attribute("data-state", "offline", timeout=30_000)
        conversation = the_conversation(company)
        [waiting] = Handoff.objects.filter(conversation=conversation)
        hours = f"{day.capitalize()} 09:00\u201310:00 (UTC)"
        assert status_event(conversation) == {
            "state": "offline",
            "why": "closed",
            "hours": hours,
            "next_open": opens.isoformat(),
            "ask_email": True,
            "handoff_id": str(waiting.id),
        }
        when = page.evaluate(
            """(iso) => new Intl.DateTimeFormat('en-GB', { weekday: 'long', month: 'long', day: 'numeric',
                 hour: 'numeric', minute: '2-digit', timeZone: 'America/New_York' }).format(new Date(iso))""",
            opens.isoformat(),
        )
        # 09:00 UTC is 04:00 or 05:00 in New York, the same day.
        assert str(opens.day) in when, when
        assert "4:00" in when or "5:00" in when, when
        expect(card.locator(".handoff-text")).to_have_text(
            f"Our team is offline right now (hours: {hours}). They're back {when}."
        )

        # The email form: labelled, an email field, its errors next to it.
        box = page.get_by_label("Your email", exact=True)
        expect(box).to_have_attribute("type", "email")
        send = page.get_by_role("button", name="Send email address", exact=True)
        send.click()
        error = card.locator(".field-error")
        expect(error).to_have_text("Please enter your email address.")
        box.fill("maria@example")
        box.press("Enter")
        expect(error).to_have_text("That doesn't look like an email address.", timeout=30_000)
        expect(box).to_have_value("maria@example")  # what was typed stays, to be corrected
        expect(box).to_have_attribute("aria-invalid", "true")
        expect(send).to_have_text("Send")
        assert page.evaluate(FOCUSED).startswith("hd-email-")
        assert not Ticket.objects.filter(tenant=company).exists()
        conversation.refresh_from_db()
        assert conversation.contact_email == ""

        box.fill("maria@example.com")
        send.click()
        expect(shadow(page, ".ticket-note")).to_have_text(
            "Ticket #1001: we'll email you at m***@example.com.", timeout=30_000
        )
        expect(box).to_have_count(0)
        [ticket] = Ticket.objects.filter(tenant=company)
        assert (ticket.number, ticket.email, ticket.status, ticket.conversation_id) == (
            1001,
            "maria@example.com",
            Ticket.Status.OPEN,
            conversation.id,
        )
        conversation.refresh_from_db()
        assert conversation.contact_email == "maria@example.com"

        # The customer can still write: stored for the team; the assistant stays silent.
        asked = len(llm.chat_requests)
        ask(page, "It's about my last bill.")
        expect(shadow(page, ".msg.customer").last).to_have_attribute("data-state", "sent", timeout=30_000)
        page.wait_for_timeout(1000)
        assert len(llm.chat_requests) == asked
        assert len(assistant_messages(company)) == 1
        assert Message.objects.filter(tenant=company, role=Message.Role.CUSTOMER).count() == 2
        expect(page.get_by_role("button", name="Continue with the assistant", exact=True)).to_be_visible()
        assert page.evaluate(TRANSCRIPT) == stored_transcript(company)

        reload_draws_the_same(page)
        expect(page.get_by_label("Your email", exact=True)).to_have_count(0)
    finally:
        context.close()


def test_a_person_joins_replies_and_hands_back_while_the_assistant_stays_silent(
    page, asgi_server, host_site, company, llm, make_user
):
    set_open(company)
    nina = agent(company, make_user, "Nina")
    bob = agent(company, make_user, "Bob")
    page.goto(embed(host_site, src=f"{asgi_server}/widget.js", key=company.widget_key))
    open_widget(page)
    ask_for_a_person(page, llm)

    # Open hours, but nobody online.
    card = shadow(page, ".handoff-status")
    expect(card).to_have_attribute("data-state", "offline", timeout=30_000)
    expect(card.locator(".handoff-text")).to_have_text(NOBODY)
    conversation = the_conversation(company)
    event = status_event(conversation)
    assert (event["why"], event["ask_email"], event["next_open"]) == ("no_agents", True, None)
    expect(page.get_by_label("Your email", exact=True)).to_be_visible()

    # Nina claims it anyway: the waiting controls go, her name comes.
    [waiting] = Handoff.objects.filter(conversation=conversation)
    as_agent(lambda: handoff.handoff_claim(tenant=company, handoff_id=waiting.id, agent=nina))
    lines = shadow(page, ".handoff-line")
    expect(lines.last).to_have_text("Nina from Acme Mobile has joined the conversation.", timeout=30_000)
    expect(page.get_by_label("Your email", exact=True)).to_have_count(0)
    expect(page.get_by_role("button", name="Continue with the assistant")).to_have_count(0)
    expect(shadow(page, ".sub")).to_have_text("Chatting with Nina")

    reply = as_agent(
        lambda: handoff.agent_reply(
            tenant=company,
            conversation_id=conversation.id,
            agent=nina,
            text="Hi, I'm Nina. Which phone would you like to return?",
            client_msg_id="nina-1",
        )
    )
    bubble = shadow(page, ".msg.agent")
    expect(bubble).to_have_count(1, timeout=30_000)
    expect(bubble).to_have_attribute("data-message-id", str(reply.message.id))
    expect(bubble.locator(".who")).to_have_text("Nina · Acme Mobile")
    expect(bubble.locator(".text")).to_have_text("Hi, I'm Nina. Which phone would you like to return?")
    expect(bubble.locator("button, .citations, .notice")).to_have_count(0)  # not an assistant answer

    # The customer answers the person; the assistant says nothing and is not even asked.
    asked = len(llm.chat_requests)
    ask(page, "The blue one I bought last week.")
    expect(shadow(page, ".msg.customer").last).to_have_attribute("data-state", "sent", timeout=30_000)
    page.wait_for_timeout(1500)
    assert len(llm.chat_requests) == asked
    assert len(assistant_messages(company)) == 1
    expect(shadow(page, ".msg.assistant")).to_have_count(1)

    # Passed on to Bob, then to a team (back in the queue), then back to the assistant.
    as_agent(
        lambda: handoff.conversation_transfer(
            tenant=company, conversation_id=conversation.id, actor=nina, to_agent_id=bob.id
        )
    )
    expect(lines.last).to_have_text("Bob has taken over the conversation.", timeout=30_000)
    expect(shadow(page, ".sub")).to_have_text("Chatting with Bob")
    as_agent(
        lambda: handoff.agent_reply(
            tenant=company,
            conversation_id=conversation.id,
            agent=bob,
            text="Bob here.",
            client_msg_id="bob-1",
        )
    )
    expect(bubble.locator(".who")).to_have_text(["Nina · Acme Mobile", "Bob · Acme Mobile"], timeout=30_000)
    team = handoff.team_create(tenant=company, name="Returns")
    as_agent(
        lambda: handoff.conversation_transfer(
            tenant=company, conversation_id=conversation.id, actor=bob, to_team_id=team.id
        )
    )
    expect(lines.last).to_have_text("You've been passed to our Returns team.", timeout=30_000)
    expect(shadow(page, ".handoff-status").last.locator(".handoff-text")).to_have_text(NOBODY)
    expect(page.get_by_role("button", name="Continue with the assistant")).to_have_count(1)
    as_agent(
        lambda: handoff.conversation_hand_back(tenant=company, conversation_id=conversation.id, actor=bob)
    )
    expect(lines.last).to_have_text("You're back with the assistant.", timeout=30_000)
    expect(page.get_by_role("button", name="Continue with the assistant")).to_have_count(0)
    expect(page.get_by_label("Your email", exact=True)).to_have_count(0)
    conversation.refresh_from_db()
    assert (conversation.status, conversation.agent_id) == (Conversation.Status.ASSISTANT, None)

    # The assistant answers the next message.
    model_composes(llm, GROUNDED)
    ask(page, QUESTION)
    answer = shadow(page, ".msg.assistant").nth(1)
    expect(answer).to_have_attribute("data-status", "complete", timeout=ANSWER_MS)
    expect(answer.locator(".text")).to_have_text(GROUNDED_ANSWER)
    assert len(llm.chat_requests) > asked
    assert page.evaluate(TRANSCRIPT) == stored_transcript(company)
    assert [role for role, _ in stored_transcript(company)] == [
        "customer",
        "assistant",
        "agent",
        "customer",
        "agent",
        "customer",
        "assistant",
    ]
    reload_draws_the_same(page)


def test_a_takeover_stops_the_answer_and_a_resolved_conversation_is_rated_from_the_keyboard(
    page, asgi_server, host_site, company, llm, make_user
):
    nina = agent(company, make_user, "Nina")
    # The quote at once, then the model's sentences slowly: a long stretch of streaming to stop.
    model_composes(llm, " ".join(COMPOSED))
    llm.token_delay = 0.25
    composed_before = len(compose_requests(llm))  # the scripted server lives for the whole session
    page.goto(embed(host_site, src=f"{asgi_server}/widget.js", key=company.widget_key))
    open_widget(page)
    page.evaluate(RECORD_REPLIES)
    ask(page, QUESTION)
    reply = shadow(page, ".msg.assistant").first
    expect(reply.locator(".text")).not_to_have_text("", timeout=FIRST_ANSWER_MS)
    page.wait_for_timeout(1500)  # long enough for the partial text to be stored once (a heartbeat)
    assert reply.get_attribute("data-status") == "streaming", (
        "the answer finished first: make the fake slower"
    )

    conversation = the_conversation(company)
    as_agent(
        lambda: handoff.conversation_take_over(tenant=company, conversation_id=conversation.id, agent=nina)
    )

    expect(reply).to_have_attribute("data-status", "interrupted", timeout=30_000)
    expect(reply.locator(".notice")).to_have_text(STOPPED)
    expect(reply.get_by_role("button")).to_have_count(0)  # no "Try again": a person has it now
    expect(shadow(page, ".handoff-line")).to_have_text("Nina from Acme Mobile has joined the conversation.")
    [stored] = assistant_messages(company)
    assert (stored.status, stored.error_code) == (Message.Status.INTERRUPTED, "interrupted")
    assert stored.text, "nothing was stored of the partial answer"
    assert stored.text.startswith(answered()), stored.text  # the quote, shown at once, is kept
    assert answered(*COMPOSED).startswith(stored.text), stored.text
    assert stored.text != answered(*COMPOSED), "the answer was not stopped"
    assert len(compose_requests(llm)) == composed_before + 1
    expect(reply.locator(".text")).to_have_text(stored.text)
    stop = ConversationEvent.objects.get(conversation=conversation, type="assistant.interrupted")
    assert stop.data == {"code": "interrupted", "retryable": False, "by": "handoff"}
    [taken] = Handoff.objects.filter(conversation=conversation)
    assert (taken.reason, taken.agent_id) == (HandoffReason.AGENT_TAKEOVER, nina.id)
    # Pieces of the cancelled stream still on their way change nothing once it was marked stopped.
    page.wait_for_timeout(1500)
    states = [s for s in page.evaluate("window.__states") if s["id"] == str(stored.id)]
    stopped = list(itertools.dropwhile(lambda s: s["status"] != "interrupted", states))
    assert stopped == [
        {"id": str(stored.id), "status": "interrupted", "text": stored.text, "notice": STOPPED, "buttons": 0}
    ], states
    assert stored.text == Message.objects.get(id=stored.id).text  # the stored text did not move either

    as_agent(
        lambda: handoff.agent_reply(
            tenant=company,
            conversation_id=conversation.id,
            agent=nina,
            text="Nina here: 30 days, unopened or not.",
            client_msg_id="nina-1",
        )
    )
    expect(shadow(page, ".msg.agent .text")).to_have_text(
        "Nina here: 30 days, unopened or not.", timeout=30_000
    )
    as_agent(
        lambda: handoff.conversation_resolve(tenant=company, conversation_id=conversation.id, actor=nina)
    )
    expect(shadow(page, ".resolved-note")).to_have_text(RESOLVED, timeout=30_000)
    prompt = page.get_by_role("form", name="How did we do?")
    expect(prompt).to_be_visible()
    stars = [page.get_by_role("button", name=f"Rate {n} out of 5", exact=True) for n in range(1, 6)]
    for star in stars:
        expect(star).to_have_attribute("aria-pressed", "false")

    # Keyboard only: arrows move between the ratings, Space picks one, Tab goes on to the comment and Send.
    stars[0].focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    assert page.evaluate(FOCUSED) == "star"
    expect(stars[3]).to_be_focused()
    page.keyboard.press("Space")
    expect(stars[3]).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("ArrowLeft")
    expect(stars[2]).to_be_focused()
    page.keyboard.press("ArrowRight")
    expect(stars[3]).to_be_focused()
    page.keyboard.press("Tab")  # every rating is a Tab stop too
    expect(stars[4]).to_be_focused()
    page.keyboard.press("Tab")
    assert page.evaluate(FOCUSED).startswith("hd-rate-comment-")
    page.keyboard.type("Quick and kind")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Send rating", exact=True)).to_be_focused()
    page.keyboard.press("Enter")

    expect(shadow(page, ".rated-note")).to_have_text(THANKS, timeout=30_000)
    expect(prompt).to_have_count(0)
    assert page.evaluate(FOCUSED) == "hd-input"
    [rating] = ConversationRating.objects.filter(conversation=conversation)
    assert (rating.score, rating.comment, rating.episode, rating.agent_id) == (
        4,
        "Quick and kind",
        1,
        nina.id,
    )
    assert ConversationEvent.objects.get(conversation=conversation, type="csat.recorded").data == {"score": 4}

    # After a reload the prompt does not come back: the stored events say it was answered.
    reload_draws_the_same(page)
    expect(shadow(page, ".rated-note")).to_have_text(THANKS)
    expect(page.get_by_role("form", name="How did we do?")).to_have_count(0)

    # Writing again starts a new conversation with the assistant.
    llm.token_delay = 0.0
    model_composes(llm, GROUNDED)
    ask(page, QUESTION)
    answer = shadow(page, ".msg.assistant").nth(1)
    expect(answer).to_have_attribute("data-status", "complete", timeout=ANSWER_MS)
    divider = shadow(page, ".divider")
    expect(divider).to_have_text("New conversation")
    # Before the message that opened it.
    assert [node[0] for node in page.evaluate(LOG)[-3:]] == ["divider", "msg customer", "msg assistant"]
    conversation.refresh_from_db()
    assert (conversation.status, conversation.episode) == (Conversation.Status.ASSISTANT, 2)

    # Resolved again; rated meanwhile behind the widget's back (another tab): the desk's sentence shows.
    as_agent(
        lambda: handoff.conversation_resolve(tenant=company, conversation_id=conversation.id, actor=nina)
    )
    prompt = page.get_by_role("form", name="How did we do?")
    expect(prompt).to_be_visible(timeout=30_000)
    ConversationRating.objects.create(tenant=company, conversation=conversation, episode=2, score=2)
    page.get_by_role("button", name="Send rating", exact=True).click()
    expect(prompt.locator(".field-error")).to_have_text("Please choose a rating from 1 to 5.")
    expect(page.get_by_role("button", name="Rate 1 out of 5", exact=True)).to_be_focused()
    page.get_by_role("button", name="Rate 5 out of 5", exact=True).click()
    page.get_by_role("button", name="Send rating", exact=True).click()
    expect(prompt.locator(".field-error")).to_have_text(
        "You've rated this conversation already. Thank you!", timeout=30_000
    )
    expect(page.get_by_role("button", name="Send rating", exact=True)).to_have_attribute(
        "aria-disabled", "true"
    )
    assert list(
        ConversationRating.objects.filter(conversation=conversation).values_list("episode", "score")
    ) in (
        [(2, 2), (1, 4)],
        [(1, 4), (2, 2)],
    )
    expect(shadow(page, ".system.error")).to_have_count(0)  # told in the prompt, not twice
    settle(page)
