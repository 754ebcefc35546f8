"""The "Timing" of a reply in the agent console, in a real Chromium: the customer asks on the company's
page, the real desk (Daphne, tracing on) answers and stores the turn's spans, and an agent opens the reply's
waterfall with the keyboard (docs/architecture/tracing.md)."""

from __future__ import annotations

import os
import re
import time

import pytest
from playwright.sync_api import expect

from apps.conversations.models import AssistantTrace, Conversation, Message
from apps.conversations.turn_trace import turn_waterfall
from tests.browser.test_console import customer, desk, open_console, open_widget  # noqa: F401 (fixtures)
from tests.browser.test_widget import ANSWER_MS, QUESTION, answers_in, ask, embed, shadow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOT = os.environ.get("WATERFALL_SCREENSHOT", "")


def _stored_trace(message: Message, timeout: float = 15.0) -> AssistantTrace:
    deadline = time.monotonic() + timeout
    while True:
        trace = AssistantTrace.objects.filter(message=message).exclude(trace_id="").first()
        if trace is not None and {"assistant.turn", "widget.message"} <= {r["name"] for r in trace.spans}:
            return trace
        assert time.monotonic() < deadline, "the reply's spans were not stored"
        time.sleep(0.1)


def test_an_agent_opens_the_timing_of_a_reply_and_sees_its_waterfall(
    asgi_server,
    desk,  # noqa: F811
    open_console,  # noqa: F811
    customer,  # noqa: F811
    host_site,
):
    answers_in(desk.tenant, "quote")
    customer.goto(embed(host_site, src=f"{asgi_server}/widget.js", key=desk.tenant.widget_key))
    open_widget(customer)
    ask(customer, QUESTION)
    expect(shadow(customer, ".msg.assistant").last).to_have_attribute(
        "data-status", "complete", timeout=ANSWER_MS
    )
    conversation = Conversation.objects.get(tenant=desk.tenant)
    reply = Message.objects.get(conversation=conversation, role=Message.Role.ASSISTANT)
    trace = _stored_trace(reply)
    # One stage failed (as a model call that gave up would): its bar must read as failed, in red.
    spans = trace.spans
    failing = next(row for row in spans if row["name"] == "evidence")
    failing["status"] = "error"
    AssistantTrace.objects.filter(id=trace.id).update(spans=spans)
    waterfall = turn_waterfall(tenant=desk.tenant, conversation_id=conversation.id, message_id=reply.id)

    agent = open_console(desk.alice, desk.slug, f"?conversation={conversation.id}")
    bubble = agent.locator(f'[data-role=assistant][data-message-id="{reply.id}"]')
    button = bubble.get_by_role("button", name="Timing")
    expect(button).to_have_attribute("aria-expanded", "false")
    panel = bubble.locator(".tl-timing")
    expect(panel).to_be_hidden()

    button.focus()
    agent.keyboard.press("Enter")
    expect(button).to_have_attribute("aria-expanded", "true")
    rows = bubble.locator(".wf-row")
    expect(rows).to_have_count(len(waterfall.stages))
    expect(rows.first).to_contain_text("Message received")
    expect(bubble.locator('.wf-row[data-name="retrieval"] .wf-label')).to_contain_text(
        re.compile(r"Retrieval · \d+ ms")
    )
    expect(bubble.locator('.wf-row[data-status="error"] .wf-label')).to_have_text(
        re.compile(r"^Evidence · [\d.]+ m?s · failed$")
    )
    red = bubble.locator('.wf-row[data-status="error"] .wf-bar').evaluate(
        "n => getComputedStyle(n).backgroundColor"
    )
    assert red == "rgb(207, 34, 46)"
    # The bars are scaled to the whole turn: the answer's bar is wide, and none runs past its track.
    widths = bubble.locator(".wf-bar").evaluate_all(
        "bars => bars.map(b => [b.getBoundingClientRect().width,"
        " b.parentElement.getBoundingClientRect().width,"
        " b.getBoundingClientRect().right - b.parentElement.getBoundingClientRect().right])"
    )
    answer = next(i for i, stage in enumerate(waterfall.stages) if stage.name == "assistant.turn")
    share = waterfall.stages[answer].duration_ms / waterfall.total_ms
    assert abs(widths[answer][0] / widths[answer][1] - share) < 0.05
    assert all(overflow <= 1.0 for _, _, overflow in widths)
    # For screen readers, the same figures as a table (the bars are hidden from them).
    table = bubble.get_by_role("table")
    expect(table.locator("caption")).to_contain_text("Timing of this reply")
    expect(table.locator("tbody tr")).to_have_count(len(waterfall.stages))
    expect(table.locator("tbody tr").first.locator("th")).to_have_text("Message received")
    expect(bubble.locator(".wf")).to_have_attribute("aria-hidden", "true")
    if SCREENSHOT:
        bubble.scroll_into_view_if_needed()
        agent.screenshot(path=SCREENSHOT, full_page=True)

    agent.keyboard.press("Enter")
    expect(button).to_have_attribute("aria-expanded", "false")
    expect(panel).to_be_hidden()
