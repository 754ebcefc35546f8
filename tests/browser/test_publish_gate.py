"""The publish gate in a real Chromium, served by Daphne, with a real Celery worker checking the golden
answers: an editor publishes a version that turns a golden answer wrong, watches the check's progress
without reloading, sees the change held with the question listed, and confirms it from the keyboard."""

from __future__ import annotations

from contextlib import ExitStack

import pytest
from playwright.sync_api import expect

from apps.accounts import services as accounts
from apps.accounts.models import Role
from apps.knowledge import ingestion
from apps.knowledge import services as kb
from apps.knowledge.models import Document
from apps.releases.models import GatedChange, GoldenQuestion
from tests.conftest import celery_worker_in_process
from tests.conversations.conftest import REFUND_POLICY, answers_configure

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"
QUESTION = "How many days do I have to return a device for a refund?"
CHECK_TIMEOUT_MS = 180_000  # the worker may first load the embedding model


def _ready(tenant, data: bytes, document=None):
    version = kb.document_upload(
        tenant=tenant,
        actor=None,
        upload=kb.Upload(filename="refunds.md", data=data),
        title="Refunds",
        document=document,
    )
    ready = ingestion.version_ingest(version_id=str(version.id))
    assert ready is not None
    assert ready.status == "ready", ready.error_message
    return ready


@pytest.fixture
def company():
    acme = accounts.tenant_create(slug="acme", name="Acme Mobile", origins=["https://acme.example"])
    for username, role in (("erin", Role.EDITOR), ("alex", Role.AGENT)):
        user = accounts.user_create(username=username, email=f"{username}@staff.example", password=PASSWORD)
        accounts.membership_grant(tenant=acme, user=user, role=role)
    answers_configure(acme, style="quote")
    v1 = _ready(acme, REFUND_POLICY)
    kb.version_publish(version=v1, actor=None)
    v2 = _ready(acme, REFUND_POLICY.replace(b"within 14 days", b"within 21 days"), document=v1.document)
    GoldenQuestion.objects.create(
        tenant=acme, question=QUESTION, expect=["14 days"], document=v1.document, document_title="Refunds"
    )
    return acme, v1.document, v2


def sign_in(page, url: str, username: str) -> None:
    page.goto(f"{url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your companies")


def test_a_publish_that_breaks_a_golden_answer_is_held_shown_and_confirmed(asgi_server, page, company):
    acme, document, v2 = company
    sign_in(page, asgi_server, "erin")
    page.goto(f"{asgi_server}/staff/acme/knowledge/documents/{document.id}/")
    page.get_by_role("button", name="Publish version 2").click()

    # No worker yet: the change waits, checking, and says so.
    expect(page.get_by_role("heading", level=1)).to_have_text("Publish version 2 of Refunds")
    expect(page.locator(".messages")).to_contain_text(
        "Checking the change against the golden answers before customers see it."
    )
    before = page.get_by_label("Knowledge change: as published now")
    expect(before).to_be_visible()
    expect(page.get_by_text("This page follows the check by itself.")).to_be_visible()
    change = GatedChange.objects.get(tenant=acme)
    assert change.status == "checking"
    page.screenshot(path="/tmp/gate-checking.png", full_page=True)

    with ExitStack() as stack:
        stack.enter_context(celery_worker_in_process(queues=("celery",)))
        # The page reloads by itself once the check is over.
        expect(page.get_by_role("heading", name="1 golden answer would turn wrong")).to_be_visible(
            timeout=CHECK_TIMEOUT_MS
        )
    table = page.get_by_role("table", name="Golden questions whose answers would turn from right to wrong")
    row = table.get_by_role("row", name=QUESTION)
    expect(row).to_contain_text("within 14 days")
    expect(row).to_contain_text("within 21 days")
    document.refresh_from_db()
    assert document.published_version.number == 1  # customers still get the old answer
    page.screenshot(path="/tmp/gate-held.png", full_page=True)

    # Keyboard only: "Publish anyway" asks first; dismissing the question changes nothing.
    dialogs: list[str] = []

    def dismiss(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.get_by_role("button", name="Publish anyway").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Publish anyway")).to_be_visible()
    assert dialogs == ["Publish anyway? Customers will get the change although 1 golden answer turns wrong."]
    change.refresh_from_db()
    assert change.status == "held"

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Publish anyway").focus()
    page.keyboard.press("Enter")
    expect(page.locator(".messages")).to_have_text(
        "Publish version 2 of Refunds: done. Customers get the change now."
    )
    expect(page.get_by_text("after erin confirmed it")).to_be_visible()
    change.refresh_from_db()
    assert change.status == "applied"
    assert Document.objects.get(pk=document.pk).published_version_id == v2.id


def test_agents_cannot_see_a_change(asgi_server, page, company):
    acme, document, _ = company
    change = GatedChange.objects.create(
        tenant=acme, kind="unpublish", document=document, document_title=document.title
    )
    sign_in(page, asgi_server, "alex")
    response = page.goto(f"{asgi_server}/staff/acme/knowledge/changes/{change.id}/")
    assert response is not None
    assert response.status == 403
    expect(page.get_by_text("Publish anyway")).to_have_count(0)
