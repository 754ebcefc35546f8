"""The customer widget in a real Chromium, embedded on a company's page served from another origin, talking
to the real desk (Daphne) that streams answers from a scripted model server.

The host page is the demo company's template, with its deliberately aggressive CSS, so every test also
runs the widget under hostile styles. Text the widget shows is compared with what the database stored.
"""

from __future__ import annotations

import itertools
import json
import re
import time

import pytest
from django.template.loader import render_to_string
from playwright.sync_api import Locator, Page, expect

from apps.accounts.models import Contact, Tenant
from apps.accounts.services import tenant_answers_configure
from apps.conversations.identity import identity_profile_signature, identity_signature
from apps.conversations.models import AssistantTrace, Conversation, Message
from apps.knowledge import ingestion
from apps.knowledge import services as knowledge
from tests.browser.netproxy import NetProxy

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The first answer pays for loading the PII analyzer and the embedding model in Daphne.
FIRST_ANSWER_MS = 120_000
ANSWER_MS = 60_000

REFUNDS = b"""# Refund policy

## Device returns

You can return a phone within 30 days of delivery for a full refund, if it is undamaged and in its box.

## Late payment fees

A bill paid after its due date costs a late fee of 7 euros. A second late payment in a year costs 12 euros.
"""
QUESTION = "How many days do I have to return a phone for a refund?"
SECTION = "Refund policy > Device returns"

# Every answer opens with the evidence: the policy's own words, quoted and cited at once under a fixed
# lead-in (apps/conversations/answering/quote.py). Written out here, not taken from the code under test.
POLICY_SENTENCE = (
    "You can return a phone within 30 days of delivery for a full refund, if it is undamaged and in its box."
)
QUOTE = f"Here is what our policy says:\n\n\u201c{POLICY_SENTENCE}\u201d [1]"
# Sentences a scripted model writes in the `compose` style. Each passes apps.guardrails.support against the
# refund policy for QUESTION, so each is really checked, shown and stored after the quote.
COMPOSED = (
    "You can return a phone within 30 days of delivery for a full refund.",
    "The phone must be undamaged and in its box.",
    "You have 30 days from delivery to return a phone.",
)
COMPOSE_PROMPT_START = "You are the customer support assistant of"
# The note a compose answer ends with when the model could not write its summary (pipeline.py).
UNAVAILABLE_NOTE = (
    "(I couldn't add a short summary just now: the policy text above is our answer. "
    "A person can go through it with you.)"
)


def answered(*sentences: str) -> str:
    """The text a `compose` answer must end with: the quote, then the model's shown sentences."""
    return QUOTE + ("\n\n" + " ".join(sentences) if sentences else "")


def answers_in(tenant: Tenant, style: str) -> Tenant:
    """The company's answer style (quote, compose or auto), set the way its settings page sets it."""
    return tenant_answers_configure(tenant=tenant, answer_style=style)


def is_compose_request(body: dict) -> bool:
    messages = body.get("messages") or []
    return bool(messages) and str(messages[0].get("content", "")).startswith(COMPOSE_PROMPT_START)


def model_composes(llm, text: str) -> None:
    """Compose requests get `text`; any other chat request an empty answer (a rewrite is then not used)."""
    llm.responder = lambda body: text if is_compose_request(body) else ""


def compose_requests(llm) -> list[dict]:
    return [body for body in llm.chat_requests if is_compose_request(body)]


def evidence_sentences(message: Message) -> list[str]:
    """The policy sentences the stored answer was built on, as its trace recorded them."""
    rows = AssistantTrace.objects.get(message_id=message.id).retrieval["evidence"]
    return [sentence for row in rows for sentence in row["sentences"]]


# What a customer must read for each code (CONTRACTS.md §1); copied here on purpose, so a change to the
# widget's wording is a visible decision.
SENTENCES = {
    "bad_request": "Sorry, we couldn't read that request. Please try again.",
    "unauthorized": "Your chat session has expired. We're starting a new one.",
    "forbidden": "Chat isn't available on this website.",
    "not_found": "We couldn't find that. It may have been removed.",
    "rate_limited": "You're sending messages too quickly. Please wait 7 seconds and try again.",
    "message_too_long": "Your message is too long. Please shorten it and send it again.",
    "llm_unavailable": (
        "Our assistant can't answer right now. Please try again in a moment, or talk to a person."
    ),
    "temporarily_unavailable": (
        "We can't look up our policies right now, so we can't answer reliably. "
        "Please try again shortly, or talk to a person."
    ),
    "interrupted": "This answer was cut off before it finished. You can try again.",
    "conflict": "That changed while we were working on it. Please try again.",
}
CLOSE_SENTENCES = {
    1008: "The connection was closed because something we received wasn't allowed. Reconnecting…",
    1011: "Something went wrong on our side. Reconnecting…",
    1009: "That message was too large to send. Please shorten it.",
    4401: "Your chat session has expired. We're starting a new one.",
    4403: "Chat isn't available on this website.",
    4429: "Too many chat connections from your network just now. We'll reconnect shortly.",
}

# Records every state of the widget's replies and of its connection line, so a test can tell streaming
# from a final replacement and see transient states ("Reconnecting…").
RECORD = """
() => {
  const root = document.querySelector('helpdesk-widget').shadowRoot;
  window.__replies = [];
  window.__statuses = [];
  window.__progress = [];
  window.__cited = {};
  const snap = () => {
    root.querySelectorAll('.msg.assistant').forEach((node) => {
      const id = node.getAttribute('data-message-id');
      const text = node.querySelector('.text').textContent;
      const status = node.getAttribute('data-status');
      const seen = window.__replies.filter((r) => r.id === id);
      const last = seen[seen.length - 1];
      const finalBefore = seen.some((r) => r.status !== 'streaming');
      if (!last || last.text !== text || last.status !== status) window.__replies.push({ id, status, text });
      // Each progress line shown, with the text above it and where it sits among the bubble's children.
      const progress = node.querySelector('.progress');
      const line = progress.textContent;
      const shown = window.__progress.filter((p) => p.id === id).pop();
      if (line && (!shown || shown.line !== line || shown.text !== text)) {
        const children = Array.from(node.children).map((child) => child.className);
        window.__progress.push({ id, line, text, status, children });
      }
      // The first moment the sources are listed: the reply's status and text then, and when.
      const cites = Array.from(node.querySelectorAll('.citations .cite')).map((b) => b.textContent);
      if (cites.length && !window.__cited[id]) {
        window.__cited[id] = { status, text, cites, finalBefore, at: performance.now() };
      }
    });
    const line = root.querySelector('.status').textContent;
    if (window.__statuses[window.__statuses.length - 1] !== line) window.__statuses.push(line);
  };
  snap();
  const everything = { subtree: true, childList: true, characterData: true, attributes: true };
  new MutationObserver(snap).observe(root, everything);
}
"""

TRANSCRIPT = """
() => Array.from(document.querySelector('helpdesk-widget').shadowRoot.querySelectorAll('.log .msg')).map(
  (node) => [
    node.classList.contains('customer') ? 'customer' : 'assistant',
    node.querySelector('.text').textContent,
  ]
)
"""

REPLY_STATE = """
() => {
  const node = document.querySelector('helpdesk-widget').shadowRoot.querySelector('.msg.assistant');
  return node && [node.getAttribute('data-status'), node.querySelector('.text').textContent];
}
"""

FOCUSED = """
() => {
  const host = document.querySelector('helpdesk-widget');
  const inner = host && host.shadowRoot.activeElement;
  if (document.activeElement !== host || !inner) return null;
  return inner.id || inner.className;
}
"""


def embed(site, *, src: str, key: str, company: str = "Acme Mobile") -> str:
    """The company's page (the demo template: aggressive global CSS) with the one-line embed."""
    html = render_to_string(
        "widget/demo_host.html", {"tenant_name": company, "widget_key": key, "script_src": src}
    )
    return site.serve(html)


def shadow(page: Page, selector: str):
    return page.locator(f"helpdesk-widget {selector}")


def open_widget(page: Page) -> None:
    launcher = page.get_by_role("button", name="Chat with us")
    expect(launcher).to_be_visible(timeout=30_000)
    page.evaluate(RECORD)
    launcher.click()
    expect(page.get_by_role("dialog", name="Chat with Acme Mobile")).to_be_visible()


def ask(page: Page, text: str) -> None:
    box = page.get_by_label("Your message")
    box.fill(text)
    box.press("Enter")


def settle(page: Page) -> None:
    """Waits for the answer a test started to finish, so the database is not flushed under its writer."""
    expect(shadow(page, ".msg.assistant").last).to_have_attribute(
        "data-status", re.compile(r"^(complete|interrupted|failed)$"), timeout=ANSWER_MS
    )


def stored_transcript(tenant: Tenant) -> list[list[str]]:
    conversation = Conversation.objects.get(tenant=tenant)
    rows = (
        Message.objects.filter(conversation=conversation)
        .exclude(status=Message.Status.SUPERSEDED)
        .order_by("created_at")
    )
    return [[m.role, m.text] for m in rows]


def streamed_states(page: Page, message_id: str) -> list[dict]:
    return [r for r in page.evaluate("window.__replies") if r["id"] == message_id]


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
    return tenant


def test_answer_streams_in_pieces_and_cites_the_policy_passage(page, asgi_server, host_site, company, llm):
    """`compose`: the quoted policy at once with its sources, a progress line under it while the model
    writes, then each checked sentence as it is finished."""
    answers_in(company, "compose")
    model_composes(llm, " ".join(COMPOSED))
    llm.token_delay = 0.08
    composed_before = len(compose_requests(llm))  # the scripted server lives for the whole session
    page.goto(embed(host_site, src=f"{asgi_server}/widget.js", key=company.widget_key))
    open_widget(page)
    ask(page, QUESTION)

    reply = shadow(page, ".msg.assistant")
    expect(reply).to_have_attribute("data-status", "complete", timeout=FIRST_ANSWER_MS)
    stored = Message.objects.get(role=Message.Role.ASSISTANT, conversation__tenant=company)
    assert stored.status == Message.Status.COMPLETE
    expect(reply.locator(".text")).to_have_text(stored.text)
    assert stored.text == answered(*COMPOSED)
    assert evidence_sentences(stored) == [POLICY_SENTENCE]
    assert len(compose_requests(llm)) == composed_before + 1

    # It grew piece by piece before it was final, and never showed anything the answer doesn't say: the
    # whole quote first, then the model's sentences one at a time.
    growing = [s["text"] for s in streamed_states(page, str(stored.id)) if s["status"] == "streaming"]
    growing = [t for t in growing if t]
    assert growing[0] == QUOTE, growing
    assert len(growing) >= 3, growing
    assert all(len(a) < len(b) for a, b in itertools.pairwise(growing)), growing
    assert all(stored.text.startswith(t) for t in growing), growing
    # While the model wrote, the widget said so under the quote (progress sits below the text).
    progress = [p for p in page.evaluate("window.__progress") if p["id"] == str(stored.id)]
    writing = [p for p in progress if p["line"] == "Writing a short answer from these…"]
    assert writing, progress
    assert (writing[0]["text"], writing[0]["status"]) == (QUOTE, "streaming"), writing
    assert writing[0]["children"] == ["who", "text", "progress", "citations", "notice", "actions"], writing
    expect(reply.locator(".progress")).to_have_text("")
    # The sources were listed with the quote, before the answer was complete.
    cited = page.evaluate("window.__cited")[str(stored.id)]
    assert cited["status"] == "streaming", cited
    assert cited["cites"] == [f"[1] Refund policy · v1 · {SECTION}"], cited

    # The citation names the document, its version and its section, and opens the passage in the widget.
    cite = reply.get_by_role("button", name=re.compile(r"^\[1\]"))
    expect(cite).to_have_text(f"[1] Refund policy · v1 · {SECTION}")
    assert [c["section"] for c in stored.citations] == [SECTION]
    cite.click()
    passage = page.get_by_role("dialog", name="Refund policy")
    expect(passage).to_be_visible()
    expect(passage).to_contain_text("You can return a phone within 30 days of delivery for a full refund")
    expect(passage).to_contain_text(f"Version 1 · {SECTION}")
    page.keyboard.press("Escape")
    expect(passage).to_be_hidden()
    assert page.evaluate(FOCUSED) == "cite"
    # Escape closed only the passage: the chat is still open.
    expect(page.get_by_role("dialog", name="Chat with Acme Mobile")).to_be_visible()

    assert page.evaluate(TRANSCRIPT) == stored_transcript(company)


def test_a_quoted_answer_shows_the_policy_and_its_sources_at_once(page, asgi_server, host_site, company, llm):
    """`quote`: the policy's own words and the list of sources within two seconds of sending, the sources
    no later than the answer is final; the model is never asked."""
    answers_in(company, "quote")
    asked = len(llm.chat_requests)
    page.goto(embed(host_site, src=f"{asgi_server}/widget.js", key=company.widget_key))
    open_widget(page)
    # The desk's first answer pays for loading its models; the two seconds are for an answer after that.
    ask(page, "Can I get my money back if I return a phone?")
    settle(page)

    page.evaluate("window.__askedAt = performance.now()")
    ask(page, QUESTION)
    reply = shadow(page, ".msg.assistant").nth(1)
    expect(reply.locator(".text")).to_have_text(QUOTE, timeout=2_000)
    expect(reply.locator(".citations")).to_be_visible(timeout=2_000)
    message_id = reply.get_attribute("data-message-id")
    cited = page.evaluate("window.__cited")[message_id]
    asked_at = page.evaluate("window.__askedAt")
    assert cited["at"] - asked_at <= 2_000, cited["at"] - asked_at
    # Listed while the reply was still streaming, or at the latest with its final state (never after it).
    assert cited["status"] in ("streaming", "complete"), cited
    assert not cited["finalBefore"], cited
    assert cited["text"] == QUOTE, cited
    assert cited["cites"] == [f"[1] Refund policy · v1 · {SECTION}"], cited
    expect(reply).to_have_attribute("data-status", "complete", timeout=ANSWER_MS)

    stored = Message.objects.get(id=message_id)
    assert stored.status == Message.Status.COMPLETE
    assert stored.text == QUOTE
    assert evidence_sentences(stored) == [POLICY_SENTENCE]
    assert [c["section"] for c in stored.citations] == [SECTION]
    assert len(llm.chat_requests) == asked  # `quote`: the model is not asked to write anything
    expect(reply.locator(".progress")).to_have_text("")
    page.screenshot(path="/tmp/browser_answer.png")

    reply.get_by_role("button", name=re.compile(r"^\[1\]")).click()
    passage = page.get_by_role("dialog", name="Refund policy")
    expect(passage).to_be_visible()
    expect(passage).to_contain_text(POLICY_SENTENCE)
    expect(passage).to_contain_text(f"Version 1 · {SECTION}")
    page.keyboard.press("Escape")
    expect(passage).to_be_hidden()
    assert page.evaluate(TRANSCRIPT) == stored_transcript(company)


def test_a_connection_cut_mid_answer_resumes_without_losing_or_repeating_text(
    page, asgi_server, host_site, company, llm
):
    answers_in(company, "compose")
    model_composes(llm, " ".join(COMPOSED))
    llm.token_delay = 0.15  # the model's sentences come seconds after the quote
    daphne_port = int(asgi_server.rsplit(":", 1)[1])
    with NetProxy(target_port=daphne_port) as proxy:
        page.goto(embed(host_site, src=f"{proxy.url}/widget.js", key=company.widget_key))
        open_widget(page)
        ask(page, QUESTION)
        page.wait_for_function(
            f"() => {{ const s = ({REPLY_STATE})(); return s && s[1].length > 0; }}",
            timeout=FIRST_ANSWER_MS,
            polling=20,
        )
        connections_before = proxy.accepted
        assert proxy.sever() >= 1
        at_cut = page.evaluate(REPLY_STATE)
        assert at_cut[0] == "streaming", "the answer finished before the cut: make the fake slower"

        reply = shadow(page, ".msg.assistant")
        expect(reply).to_have_attribute("data-status", "complete", timeout=ANSWER_MS)
        assert proxy.accepted > connections_before  # it came back through a new connection

    stored = Message.objects.get(role=Message.Role.ASSISTANT, conversation__tenant=company)
    assert stored.status == Message.Status.COMPLETE
    assert stored.text == answered(*COMPOSED)
    expect(reply.locator(".text")).to_have_text(stored.text)
    shown = [s["text"] for s in streamed_states(page, str(stored.id))]
    # Every state the customer saw, before and after the cut, was a prefix of the stored answer: nothing
    # shown twice, nothing skipped.
    assert all(stored.text.startswith(t) for t in shown), shown
    assert any(len(t) > len(at_cut[1]) for t in shown[:-1]), (
        at_cut,
        shown,
        page.evaluate("window.__statuses"),
    )
    assert "Reconnecting…" in page.evaluate("window.__statuses")
    # Transcript equals the stored one (I4), and the customer's message was stored once (I1).
    assert page.evaluate(TRANSCRIPT) == stored_transcript(company)
    assert Message.objects.filter(role=Message.Role.CUSTOMER, conversation__tenant=company).count() == 1

    # A new page load rebuilds the same transcript from the server.
    page.goto(embed(host_site, src=f"{asgi_server}/widget.js", key=company.widget_key))
    expect(shadow(page, ".msg.assistant")).to_have_attribute("data-status", "complete", timeout=30_000)
    assert page.evaluate(TRANSCRIPT) == stored_transcript(company)


def test_the_widget_refuses_to_load_on_a_site_that_is_not_allowed(
    page, asgi_server, host_site, foreign_site, company
):
    warnings: list[str] = []
    page.on("console", lambda msg: warnings.append(msg.text) if msg.type == "warning" else None)
    page.goto(embed(foreign_site, src=f"{asgi_server}/widget.js", key=company.widget_key))
    deadline = time.monotonic() + 30
    while not any(w.startswith("Helpdesk widget:") for w in warnings) and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    [warning] = [w for w in warnings if w.startswith("Helpdesk widget:")]
    assert foreign_site.origin in warning
    assert "will not load" in warning
    assert page.locator("helpdesk-widget").count() == 0
    assert page.get_by_role("button", name="Chat with us").count() == 0
    assert page.evaluate("typeof window.HelpdeskWidget") == "undefined"

    ws_url = asgi_server.replace("http://", "ws://") + f"/ws/widget/?key={company.widget_key}"
    close_code = page.evaluate(
        """(url) => new Promise((resolve) => {
          const ws = new WebSocket(url);
          ws.onclose = (event) => resolve(event.code);
        })""",
        ws_url,
    )
    assert close_code == 4403
    assert not Conversation.objects.filter(tenant=company).exists()

    # The same socket from the company's own site is accepted; a forged token then closes it with 4401.
    page.goto(embed(host_site, src=f"{asgi_server}/widget.js", key=company.widget_key))
    close_code = page.evaluate(
        """(url) => new Promise((resolve) => {
          const ws = new WebSocket(url);
          const hello = { type: 'hello', token: 'forged', last_seq: 0, client_msg_id: 'h1' };
          ws.onopen = () => ws.send(JSON.stringify(hello));
          ws.onclose = (event) => resolve(event.code);
        })""",
        ws_url,
    )
    assert close_code == 4401


def test_failures_the_desk_really_produces_are_explained(page, asgi_server, host_site, company, llm):
    page.goto(embed(host_site, src=f"{asgi_server}/widget.js", key=company.widget_key))
    open_widget(page)

    # Too long: refused in the widget with the limit the session announced; nothing is sent.
    box = page.get_by_label("Your message")
    box.fill("x" * 4001)
    expect(shadow(page, ".counter")).to_have_text("1 character too many")
    box.press("Enter")
    expect(shadow(page, ".composer-error")).to_have_text(
        "Your message is too long. Please shorten it to 4000 characters or fewer."
    )
    expect(box).to_have_attribute("aria-invalid", "true")
    assert shadow(page, ".msg").count() == 0
    assert not Message.objects.filter(tenant=company).exists()

    # `compose`, and the model server fails: the quoted policy still answers, the customer is told the
    # summary is missing and offered a person.
    answers_in(company, "compose")
    model_composes(llm, " ".join(COMPOSED))
    llm.behaviour = "error_500"
    ask(page, QUESTION)
    down = shadow(page, ".msg.assistant").nth(0)
    expect(down).to_have_attribute("data-status", "complete", timeout=FIRST_ANSWER_MS)
    expect(down.locator(".text")).to_have_text(QUOTE + "\n\n" + UNAVAILABLE_NOTE)
    expect(down.get_by_role("button", name="Talk to a person")).to_be_visible()
    expect(down.get_by_role("button", name="Try again")).to_have_count(0)  # the policy did answer
    [first] = Message.objects.filter(role=Message.Role.ASSISTANT, tenant=company)
    assert (first.status, first.error_code, first.offer_handoff) == (
        Message.Status.COMPLETE,
        "llm_unavailable",
        True,
    )
    assert first.text == QUOTE + "\n\n" + UNAVAILABLE_NOTE

    # Asked again; this time the stream is cut after the model's first sentence: what was shown (the
    # quote and the checked sentence) stays, marked, and can be tried again.
    llm.behaviour = "cut"
    llm.cut_after = len(COMPOSED[0].split()) + 3
    ask(page, QUESTION)
    cut = shadow(page, ".msg.assistant").nth(1)
    expect(cut).to_have_attribute("data-status", "interrupted", timeout=ANSWER_MS)
    expect(cut.locator(".text")).to_have_text(answered(COMPOSED[0]))
    expect(cut.locator(".notice")).to_have_text(SENTENCES["interrupted"])

    # Again, with a healthy model: a complete answer, the customer's messages still stored once each.
    llm.behaviour = "ok"
    cut.get_by_role("button", name="Try again").click()
    done = shadow(page, ".msg.assistant").nth(2)
    expect(done).to_have_attribute("data-status", "complete", timeout=ANSWER_MS)
    expect(done.locator(".text")).to_have_text(answered(*COMPOSED))
    expect(cut.get_by_role("button", name="Try again")).to_have_count(0)
    assert Message.objects.filter(role=Message.Role.CUSTOMER, tenant=company).count() == 2

    # The person the answer without its summary offered.
    down.get_by_role("button", name="Talk to a person").click()
    expect(shadow(page, ".handoff-note")).to_have_text(
        "We've asked a person to join. They'll reply here as soon as they can."
    )
    conversation = Conversation.objects.get(tenant=company)
    assert conversation.status == Conversation.Status.WAITING
    assert page.evaluate(TRANSCRIPT) == stored_transcript(company)


def forwarded_widget(page, asgi_server, host_site, company) -> tuple[list, Locator]:
    """The widget, open and connected through a Playwright route that forwards everything and lets a test
    add frames and closes of its own; the routes (one per connection) and the status line."""
    routes: list = []

    def forward(ws):
        ws.connect_to_server()
        routes.append(ws)

    page.route_web_socket(re.compile(r"/ws/widget/"), forward)
    page.goto(embed(host_site, src=f"{asgi_server}/widget.js", key=company.widget_key))
    open_widget(page)
    status = shadow(page, ".status")
    expect(status).to_have_text("", timeout=30_000)
    assert len(routes) == 1
    return routes, status


def test_every_error_code_and_close_code_has_a_sentence(page, asgi_server, host_site, company):
    """The codes a healthy desk can't be made to send on demand, delivered through the real socket."""
    routes, status = forwarded_widget(page, asgi_server, host_site, company)

    for name in SENTENCES:
        frame: dict[str, object] = {
            "type": "error",
            "code": name,
            "message": "server text",
            "retryable": name == "rate_limited",
        }
        if name == "rate_limited":
            frame["retry_after"] = 7
        if name == "temporarily_unavailable":
            # About a message: a notice. The socket's own (no message id, close 1013 follows while the
            # desk restarts) only says "Reconnecting…" in the status line, checked below.
            frame["client_msg_id"] = "c-scripted"
        routes[-1].send(json.dumps(frame))
    notices = shadow(page, ".system.error")
    expect(notices).to_have_text(list(SENTENCES.values()))

    routes[-1].send(
        json.dumps({"type": "error", "code": "temporarily_unavailable", "message": "x", "retryable": True})
    )
    expect(status).to_have_text("Reconnecting…")
    expect(notices).to_have_count(len(SENTENCES))
    for close in (1013,):
        connections = len(routes)
        routes[-1].close(code=close, reason="scripted")
        deadline = time.monotonic() + 30
        while len(routes) == connections and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        assert len(routes) == connections + 1, f"no reconnect after {close}"
        expect(status).to_have_text("", timeout=30_000)

    for close in (1008, 1011, 1009, 4401):
        connections = len(routes)
        routes[-1].close(code=close, reason="scripted")
        deadline = time.monotonic() + 30
        while len(routes) == connections and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        assert len(routes) == connections + 1, f"no reconnect after {close}"
        expect(status).to_have_text("", timeout=30_000)
    seen = page.evaluate("window.__statuses")
    for close in (1008, 1011, 4401):
        assert CLOSE_SENTENCES[close] in seen, (close, seen)
    expect(notices.last).to_have_text(CLOSE_SENTENCES[1009])

    routes[-1].close(code=4403, reason="scripted")
    expect(status).to_have_text(CLOSE_SENTENCES[4403])
    page.wait_for_timeout(1500)
    assert len(routes) == 6  # forbidden is final: no reconnect


def test_too_many_connections_is_said_and_the_widget_waits_before_reconnecting(
    page, asgi_server, host_site, company
):
    routes, status = forwarded_widget(page, asgi_server, host_site, company)
    routes[-1].close(code=4429, reason="scripted")
    expect(status).to_have_text(CLOSE_SENTENCES[4429])
    # It waits at least 30 s: reconnecting at once would only be refused again.
    page.wait_for_timeout(3000)
    assert len(routes) == 1
    expect(status).to_have_text(CLOSE_SENTENCES[4429])


def test_keyboard_only_on_a_narrow_screen(page, asgi_server, host_site, company, llm):
    page.set_viewport_size({"width": 320, "height": 640})
    page.goto(embed(host_site, src=f"{asgi_server}/widget.js", key=company.widget_key))
    launcher = page.get_by_role("button", name="Chat with us")
    expect(launcher).to_be_visible(timeout=30_000)

    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate(FOCUSED) == "launcher":
            break
    assert page.evaluate(FOCUSED) == "launcher"
    style = shadow(page, ".launcher").evaluate(
        "(b) => { const s = getComputedStyle(b); "
        "return [s.outlineStyle, s.outlineWidth, s.fontFamily, s.color, s.transform]; }"
    )
    # Focus is visible, and the host page's `* { font-family: serif !important }`, `button { ... }` and
    # `:focus { outline: none !important }` do not reach inside.
    assert style[:2] == ["solid", "3px"], style
    assert style[2].startswith("system-ui"), style
    assert style[3] == "rgb(255, 255, 255)", style
    assert style[4] == "none", style
    # Nor does the widget's CSS reach out.
    host_button = page.get_by_role("button", name="Choose Essential")
    assert host_button.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(241, 196, 15)"
    expect(launcher).to_have_attribute("aria-expanded", "false")

    page.keyboard.press("Enter")
    panel = page.get_by_role("dialog", name="Chat with Acme Mobile")
    expect(panel).to_be_visible()
    expect(launcher).to_have_attribute("aria-expanded", "true")
    assert page.evaluate(FOCUSED) == "hd-input"
    box = panel.bounding_box()
    assert box is not None
    assert box["x"] >= 0, box
    assert box["x"] + box["width"] <= 320, box

    page.keyboard.type("Hello")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("there")
    page.keyboard.press("Enter")
    mine = shadow(page, ".msg.customer")
    expect(mine.locator(".text")).to_have_text("Hello\nthere")
    expect(mine).to_have_attribute("data-state", "sent", timeout=30_000)
    assert page.get_by_label("Your message").input_value() == ""

    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(launcher).to_have_attribute("aria-expanded", "false")
    assert page.evaluate(FOCUSED) == "launcher"
    stored = Message.objects.get(role=Message.Role.CUSTOMER, tenant=company)
    assert stored.text == "Hello\nthere"
    settle(page)


def test_streamed_pieces_are_shown_once_and_never_with_a_hole(page, asgi_server, host_site, company):
    """The offset rule of docs/architecture/realtime.md, with pieces a healthy desk rarely sends: repeated,
    overlapping, stale, and one past a gap (which makes the widget reconnect for a snapshot)."""
    routes = []

    def forward(ws):
        ws.connect_to_server()
        routes.append(ws)

    page.route_web_socket(re.compile(r"/ws/widget/"), forward)
    page.goto(embed(host_site, src=f"{asgi_server}/widget.js", key=company.widget_key))
    open_widget(page)
    expect(shadow(page, ".status")).to_have_text("", timeout=30_000)

    def push(**frame):
        routes[-1].send(json.dumps({"type": "assistant.delta", "message_id": "m1", **frame}))

    push(offset=0, text="Hello")
    push(offset=0, text="Hello")  # the same piece again (e.g. replayed after a reconnect)
    push(offset=3, text="lo, wor")  # overlaps the end of what is shown
    push(offset=5, text=", wor")  # entirely old
    text = shadow(page, '.msg.assistant[data-message-id="m1"] .text')
    expect(text).to_have_text("Hello, wor")
    push(offset=20, text="zzz")  # past a gap: not shown; the widget asks for a snapshot by reconnecting
    deadline = time.monotonic() + 15
    while len(routes) < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert len(routes) == 2
    expect(text).to_have_text("Hello, wor")
    snapshot = {"type": "assistant.snapshot", "message_id": "m1", "text": "Hello, world and more"}
    routes[-1].send(json.dumps(snapshot))
    push(offset=21, text=" text")
    expect(text).to_have_text("Hello, world and more text")
    states = [s["text"] for s in streamed_states(page, "m1") if s["text"]]
    assert states == ["Hello", "Hello, wor", "Hello, world and more", "Hello, world and more text"]


def test_a_message_sent_while_the_desk_is_unreachable_is_delivered_once_after_a_reload(
    page, asgi_server, host_site, company
):
    """Outbound messages wait in the widget (and in localStorage) until the desk acknowledges them."""
    blocked = {"on": True}

    def forward(ws):
        server = ws.connect_to_server()

        def to_server(message):
            frame = json.loads(message)
            if blocked["on"] and frame["type"] == "message":
                return  # lost on the way: no ack will come
            server.send(message)

        ws.on_message(to_server)

    page.route_web_socket(re.compile(r"/ws/widget/"), forward)
    url = embed(host_site, src=f"{asgi_server}/widget.js", key=company.widget_key)
    page.goto(url)
    open_widget(page)
    expect(shadow(page, ".status")).to_have_text("", timeout=30_000)
    ask(page, "Is my order on its way?")
    mine = shadow(page, ".msg.customer")
    expect(mine).to_have_attribute("data-state", "pending")
    expect(mine.locator(".meta")).to_have_text("Sending…")
    page.wait_for_timeout(500)
    assert not Message.objects.filter(tenant=company).exists()

    blocked["on"] = False
    page.reload()
    mine = shadow(page, ".msg.customer")
    expect(mine).to_have_attribute("data-state", "sent", timeout=30_000)
    expect(mine.locator(".text")).to_have_text("Is my order on its way?")
    [stored] = Message.objects.filter(tenant=company, role=Message.Role.CUSTOMER)
    assert stored.text == "Is my order on its way?"
    assert page.evaluate(f"localStorage.getItem('helpdesk:{company.widget_key}:outbox')") is None
    settle(page)


def test_a_customer_the_company_vouches_for_is_verified(page, asgi_server, host_site, company):
    issued_at = int(time.time())
    signature = identity_signature(secret=company.identity_secret, external_id="cust-42", issued_at=issued_at)
    url = host_site.serve(
        "<!doctype html><html lang=en><title>Account</title><h1>Your account</h1>"
        f'<script src="{asgi_server}/widget.js" data-widget-key="{company.widget_key}" '
        f'data-external-id="cust-42" data-issued-at="{issued_at}" data-signature="{signature}" '
        'data-name="Maria Lopez" data-email="maria@example.com" async></script>'
    )
    page.goto(url)
    open_widget(page)
    ask(page, "Hello")
    expect(shadow(page, ".msg.customer")).to_have_attribute("data-state", "sent", timeout=30_000)
    conversation = Conversation.objects.select_related("contact").get(tenant=company)
    assert conversation.contact is not None
    assert conversation.contact.external_id == "cust-42"
    settle(page)


def test_signing_in_opens_the_customers_own_chat_says_why_and_logout_ends_it(
    page, asgi_server, host_site, company
):
    guest_page = host_site.serve(
        "<!doctype html><html lang=en><title>Shop</title><h1>Shop</h1>"
        f'<script src="{asgi_server}/widget.js" data-widget-key="{company.widget_key}" async></script>'
    )
    page.goto(guest_page)
    open_widget(page)
    ask(page, "Question typed before signing in")
    expect(shadow(page, ".msg.customer")).to_have_attribute("data-state", "sent", timeout=30_000)
    settle(page)

    issued_at = int(time.time())
    signature = identity_profile_signature(
        secret=company.identity_secret,
        external_id="cust-77",
        issued_at=issued_at,
        email="",
        name="Maria Lopez",
    )
    account_page = host_site.serve(
        "<!doctype html><html lang=en><title>Account</title><h1>Your account</h1>"
        f'<script src="{asgi_server}/widget.js" data-widget-key="{company.widget_key}" '
        f'data-external-id="cust-77" data-issued-at="{issued_at}" data-signature="{signature}" '
        'data-name="Maria Lopez" async></script>'
    )
    page.goto(account_page)
    # The panel was open when she left the page, so it opens again by itself.
    expect(page.get_by_role("dialog", name="Chat with Acme Mobile")).to_be_visible(timeout=30_000)
    notice = shadow(page, "p.system").filter(has_text="You're signed in.")
    expect(notice).to_be_visible(timeout=30_000)
    expect(shadow(page, ".msg.customer")).to_have_count(0)
    ask(page, "Now as Maria")
    expect(shadow(page, ".msg.customer")).to_have_attribute("data-state", "sent", timeout=30_000)
    settle(page)
    mine = Conversation.objects.get(tenant=company, contact__external_id="cust-77")
    guest = Conversation.objects.get(tenant=company, contact__isnull=True)
    assert list(mine.messages.filter(role="customer").values_list("text", flat=True)) == ["Now as Maria"]
    assert guest.visitor_ended_at is not None

    # The company's page signs her out: the widget ends her session and goes on as a new guest.
    epoch = Contact.objects.get(tenant=company, external_id="cust-77").session_epoch
    page.evaluate("window.HelpdeskWidget.logout()")
    expect(shadow(page, ".msg.customer")).to_have_count(0, timeout=30_000)
    assert Contact.objects.get(tenant=company, external_id="cust-77").session_epoch == epoch + 1
    ask(page, "A guest again")
    expect(shadow(page, ".msg.customer")).to_have_attribute("data-state", "sent", timeout=30_000)
    settle(page)
    latest = Conversation.objects.filter(tenant=company).order_by("-created_at").first()
    assert latest is not None
    assert latest.contact_id is None
    assert latest.id not in (mine.id, guest.id)
