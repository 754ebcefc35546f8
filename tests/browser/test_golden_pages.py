"""The golden answers pages in a real Chromium, served by Daphne, with a real Celery worker running the set
through the real answer pipeline: an editor adds a question, runs the set, watches the run's progress turn
into its result without reloading, and sees the pass rate on the chart; an admin turns a reply in the
console into a golden question in one click."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from django.conf import settings as django_settings
from django.test import Client
from playwright.sync_api import Browser, Page, expect

from apps.accounts.models import Role, Tenant, User
from apps.conversations import services as conversations
from apps.conversations.models import Conversation, Message
from apps.knowledge import ingestion
from apps.knowledge import services as knowledge
from apps.knowledge.models import Document
from apps.releases.models import GoldenQuestion, GoldenRun
from tests.conftest import celery_worker_in_process
from tests.conversations.conftest import REFUND_POLICY, answers_configure

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

QUESTION = "How many days do I have to return a device for a refund?"
# The worker loads the embedding model and the PII analyzer for its first question.
RUN_TIMEOUT_MS = 180_000


@dataclass(frozen=True)
class Desk:
    tenant: Tenant
    refunds: Document
    erin: User  # editor
    ada: User  # admin
    alex: User  # agent


@pytest.fixture
def desk(make_tenant, make_user) -> Desk:
    """Acme Mobile with its refund policy published (ingested for real) and quote answers, which never call
    a model: the run needs nothing but the desk itself."""
    tenant = make_tenant(slug="acme", name="Acme Mobile")
    answers_configure(tenant, style="quote")
    version = knowledge.document_upload(
        tenant=tenant,
        actor=None,
        upload=knowledge.Upload(filename="refunds.md", data=REFUND_POLICY),
        title="Refunds",
    )
    ready = ingestion.version_ingest(version_id=str(version.id))
    assert ready is not None
    assert ready.status == "ready"
    knowledge.version_publish(version=ready, actor=None)
    return Desk(
        tenant=tenant,
        refunds=ready.document,
        erin=make_user(tenant, roles=[Role.EDITOR], username="erin"),
        ada=make_user(tenant, roles=[Role.ADMIN], username="ada"),
        alex=make_user(tenant, roles=[Role.AGENT], username="alex"),
    )


@pytest.fixture
def signed_in(browser: Browser, asgi_server: str) -> Iterator[Callable[[User], Page]]:
    """`signed_in(user)`: a browser context of its own with `user`'s real session."""
    contexts = []

    def factory(user: User) -> Page:
        context = browser.new_context()
        contexts.append(context)
        client = Client()
        client.force_login(user)
        name = django_settings.SESSION_COOKIE_NAME
        context.add_cookies([{"name": name, "value": client.cookies[name].value, "url": asgi_server}])
        return context.new_page()

    yield factory
    for context in contexts:
        context.close()


def test_an_editor_adds_a_question_runs_the_set_and_sees_progress_result_and_chart(
    asgi_server: str, desk: Desk, signed_in: Callable[[User], Page]
) -> None:
    page = signed_in(desk.erin)
    page.goto(f"{asgi_server}/staff/acme/settings/")
    page.get_by_role("navigation", name="Knowledge pages").get_by_role("link", name="Golden answers").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Golden answers")
    expect(page.get_by_role("heading", name="No golden questions yet")).to_be_visible()
    expect(page.get_by_text("No finished run yet")).to_be_visible()
    page.get_by_role("link", name="Add the first golden question").click()

    # A refusal keeps what was typed, and says what is missing in one sentence.
    page.get_by_label("Question, as a customer asks it").fill(QUESTION)
    page.get_by_role("button", name="Add to the golden set").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Say which fact the right answer holds, or mark that the assistant must not answer."
    )
    expect(page.get_by_label("Question, as a customer asks it")).to_have_value(QUESTION)

    page.get_by_label("What a right answer contains").fill("14 days")
    page.get_by_label("Policy a right answer cites").select_option(label="Refunds")
    submit = page.get_by_role("button", name="Add to the golden set")
    submit.focus()
    page.keyboard.press("Enter")
    row = page.get_by_role("row", name=re.compile(re.escape(QUESTION)))
    expect(row).to_contain_text("Contains “14 days”")
    expect(row).to_contain_text("cites Refunds")
    expect(row).to_contain_text("Not run yet")

    # No worker yet: the run waits, and its page shows that.
    page.get_by_role("button", name="Run now").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Golden run")
    status = page.get_by_role("status").filter(has_text=re.compile("Queued|Running|Done"))
    expect(status).to_have_text("Queued: waiting for a worker to start 1 question.")
    expect(page.get_by_role("progressbar", name="Questions asked")).to_be_visible()
    expect(page.get_by_role("link", name="Refresh")).to_be_hidden()  # the script keeps it up to date
    run = GoldenRun.objects.get(tenant=desk.tenant)
    assert (run.status, run.total, run.done) == ("queued", 1, 0)

    with celery_worker_in_process(queues=("celery",)):
        # Polled, then shown as the finished run renders (the script reloads it once, by itself).
        expect(page.get_by_role("status").filter(has_text="Done")).to_have_text(
            "Done: 1 of 1 question answered right (100%).", timeout=RUN_TIMEOUT_MS
        )
    answers = page.get_by_role("table", name=re.compile("Each golden question"))
    expect(answers.get_by_role("row", name=re.compile(re.escape(QUESTION)))).to_contain_text("Right")
    expect(answers).to_contain_text("14 days")
    expect(page.get_by_role("progressbar")).to_have_count(0)
    run.refresh_from_db()
    assert (run.status, run.done, run.passed) == ("done", 1, 1)

    page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name="Golden answers").click()
    chart = page.get_by_role("img", name="Golden answers: pass rate per run")
    expect(chart).to_be_visible()
    expect(page.get_by_role("table", name="Pass rate of each golden run, oldest first")).to_contain_text(
        "1 of 1"
    )
    expect(page.get_by_role("row", name=re.compile(re.escape(QUESTION)))).to_contain_text("Right")
    expect(page.get_by_role("table", name="Golden runs, newest first")).to_contain_text("Run by hand")


def reply_in_a_conversation(desk: Desk) -> tuple[Conversation, Message]:
    """A customer's question in the widget and the assistant's finished reply citing the refund policy."""
    session = conversations.widget_session_open(tenant=desk.tenant, token=None, claim=None)
    conversations.message_receive(
        tenant=desk.tenant, claims=session.claims, client_msg_id="c-1", text="Can I still return my phone?"
    )
    conversation = Conversation.objects.get(id=session.claims.conversation_id)
    message = conversations.reply_start(conversation_id=conversation.id, turn=conversation.turn)
    assert message is not None
    citation = {
        "n": 1,
        "chunk_id": "00000000-0000-0000-0000-000000000001",
        "document_id": str(desk.refunds.id),
        "title": "Refunds",
        "version": 1,
        "section": "Refund window",
        "page": None,
        "inferred": False,
    }
    reply = conversations.reply_finish(
        message=message,
        outcome=conversations.ReplyOutcome(
            status=Message.Status.COMPLETE,
            text="Devices can be returned within 14 days of delivery for a full refund. [1]",
            citations=[citation],
        ),
    )
    return conversation, reply


def test_an_admin_turns_a_reply_in_the_console_into_a_golden_question(
    asgi_server: str, desk: Desk, signed_in: Callable[[User], Page]
) -> None:
    conversation, reply = reply_in_a_conversation(desk)

    agent = signed_in(desk.alex)
    agent.goto(f"{asgi_server}/staff/acme/console/?conversation={conversation.id}")
    bubble = agent.locator(f'[data-message-id="{reply.id}"]')
    expect(bubble).to_contain_text("within 14 days", timeout=30_000)
    expect(bubble.get_by_role("link", name=re.compile("Right answer"))).to_have_count(0)  # agents only answer

    admin = signed_in(desk.ada)
    admin.goto(f"{asgi_server}/staff/acme/console/?conversation={conversation.id}")
    bubble = admin.locator(f'[data-message-id="{reply.id}"]')
    expect(bubble).to_contain_text("within 14 days", timeout=30_000)
    expect(bubble.get_by_role("link", name=re.compile("^Wrong answer"))).to_be_visible()
    with admin.context.expect_page() as opened:
        bubble.get_by_role("link", name=re.compile("^Right answer")).click()
    form = opened.value
    expect(form.get_by_role("heading", level=1)).to_have_text("Add a golden question")
    expect(form.get_by_label("Question, as a customer asks it")).to_have_value("Can I still return my phone?")
    expect(form.get_by_label("What a right answer contains")).to_have_value("14 days")
    expect(form.get_by_label("Policy a right answer cites")).to_have_value(str(desk.refunds.id))
    expect(form.get_by_text("You marked this reply as right")).to_be_visible()
    form.get_by_role("button", name="Add to the golden set").click()
    expect(form.get_by_role("heading", level=1)).to_have_text("Golden answers")
    expect(form.get_by_role("row", name=re.compile("Can I still return my phone"))).to_contain_text(
        "From a conversation"
    )
    golden = GoldenQuestion.objects.get(tenant=desk.tenant)
    assert (golden.question, golden.expect, golden.document_id, golden.source, golden.source_ref) == (
        "Can I still return my phone?",
        ["14 days"],
        desk.refunds.id,
        "conversation",
        reply.id,
    )
