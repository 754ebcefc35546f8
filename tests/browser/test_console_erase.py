""" "Erase this customer" in the agent console, in a real Chromium: an admin opens a customer's conversation,
reads what will be deleted, confirms, and watches the erasure finish; an agent has no such button."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from apps.accounts.models import Role
from apps.conversations.models import Conversation, Message
from apps.erasure.models import ErasureRequest
from tests.browser.test_console import Desk, desk, open_console  # noqa: F401 (desk, open_console: fixtures)
from tests.conftest import MakeUser, celery_worker_in_process
from tests.handoff.api_fixtures import chat

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WORDS = "My customer number is 4417 and my name is Ada Quill."


def test_an_admin_erases_the_customer_of_a_conversation(
    desk: Desk,  # noqa: F811
    open_console,  # noqa: F811
    make_user: MakeUser,
) -> None:
    admin = make_user(desk.tenant, roles=[Role.ADMIN], username="nina", first_name="Nina")
    conversation = chat(desk.tenant, WORDS).conversation
    other = chat(desk.tenant, "Where is my parcel?").conversation

    with celery_worker_in_process(queues=("celery",)):
        page = open_console(admin, desk.slug, f"?conversation={conversation.id}")
        button = page.get_by_role("button", name="Erase this customer")
        expect(button).to_be_visible()
        button.click()
        dialog = page.get_by_role("dialog", name="Erase this customer?")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text("their conversations and every message in them")
        expect(dialog).to_contain_text("This cannot be undone.")
        dialog.get_by_role("button", name="Erase everything").click()
        status = dialog.get_by_role("status")
        expect(status).to_have_text(
            re.compile(r"^Erased this anonymous visitor: .*\d+ messages"), timeout=30_000
        )
        expect(status).to_have_attribute("data-state", "done")
        dialog.get_by_role("button", name="Close").click()
        expect(dialog).to_be_hidden()

    request = ErasureRequest.objects.get(tenant=desk.tenant)
    assert request.state == ErasureRequest.State.DONE
    assert request.requested_by == admin
    assert not Conversation.objects.filter(id=conversation.id).exists()
    assert not Message.objects.filter(text__contains="Ada Quill").exists()
    assert Conversation.objects.filter(id=other.id).exists()


def test_an_agent_sees_no_erase_button(desk: Desk, open_console) -> None:  # noqa: F811
    conversation = chat(desk.tenant, WORDS).conversation
    page = open_console(desk.alice, desk.slug, f"?conversation={conversation.id}")
    expect(page.get_by_role("heading", name=re.compile("Conversation"))).to_be_visible()
    expect(page.locator("[data-erase-open]")).to_have_count(0)
    expect(page.locator("[data-erase-dialog]")).to_have_count(0)
