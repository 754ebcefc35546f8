"""One customer across channels: a verified customer who writes in the widget and by email has one
timeline in the console, each message naming its channel; an email whose sender the provider did not
authenticate, or an address a visitor typed, never joins it. The case file names each message's channel."""

from __future__ import annotations

import time
from typing import Any

import pytest

from apps.accounts import services as accounts
from apps.accounts.models import Contact, Role
from apps.conversations import services as conv
from apps.conversations.identity import IdentityClaim, identity_signature
from apps.conversations.models import Message
from apps.handoff import email_path
from apps.handoff.casefile import case_file_build
from apps.handoff.contact_timeline import contact_timeline
from apps.handoff.models import Handoff, Ticket
from tests.handoff.conftest import Chat, Desk, chat_start, closed_all_week, to_waiting

SUPPORT = "help@nimbus.example"
MARIA = "maria@example.com"


def _verified_chat(desk: Desk, contact: Contact) -> Chat:
    issued = int(time.time())
    claim = IdentityClaim(
        external_id=contact.external_id,
        issued_at=issued,
        signature=identity_signature(
            secret=desk.tenant.identity_secret, external_id=contact.external_id, issued_at=issued
        ),
    )
    session = conv.widget_session_open(tenant=desk.tenant, token=None, claim=claim)
    assert session.claims.contact_id == contact.id
    return Chat(tenant=desk.tenant, session=session)


def _email(text: str, email_id: str, *, spf: str = "", dkim: str = "") -> Message:
    message = email_path.inbound_email_receive(
        recipient=SUPPORT,
        sender=f"Maria <{MARIA}>",
        text=text,
        email_id=email_id,
        subject="Bill",
        spf=spf,
        dkim=dkim,
    )
    assert message is not None
    return message


@pytest.fixture
def maria(desk: Desk) -> Contact:
    desk.tenant.support_email = SUPPORT
    desk.tenant.email_assistant_enabled = True
    desk.tenant.save(update_fields=["support_email", "email_assistant_enabled"])
    # The company set Maria's address (its signed identity claim, or its staff): the only way it is set.
    return accounts.contact_upsert(tenant=desk.tenant, external_id="cust-7", name="Maria", email=MARIA)


@pytest.mark.django_db
def test_a_verified_customer_has_one_timeline_across_the_widget_and_email(
    desk: Desk, maria: Contact, api_client_as: Any
) -> None:
    chat = _verified_chat(desk, maria)
    chat.say("My bill is 20 euros too high, my number is +44 20 7946 0958.")
    widget_answer = chat.answer("Let me check your bill.")
    emailed = _email("Any news about my bill?", "<m-1@mail.example.com>", dkim="pass")
    assert emailed.conversation.contact_id == maria.id
    # Not authenticated by the provider: the same address, but not Maria's timeline.
    unverified = _email("Hello from Maria?", "<m-2@mail.example.com>")
    assert unverified.conversation.contact_id is None
    assert unverified.conversation_id != emailed.conversation_id
    # A widget visitor who typed Maria's address is not Maria either.
    closed_all_week(desk.tenant)
    typed = chat_start(desk.tenant, "I'm Maria, what is my balance?")
    to_waiting(typed)
    conv.contact_email_leave(tenant=desk.tenant, claims=typed.claims, email=MARIA)
    assert typed.row().contact_id is None

    alice = api_client_as(desk.alice)
    response = alice.get(f"/api/v1/tenants/{desk.tenant.slug}/contacts/{maria.id}/timeline/")

    assert response.status_code == 200
    body = response.json()
    widget_question = Message.objects.get(conversation_id=chat.id, role="customer")
    assert body["contact"] == {"id": str(maria.id), "external_id": "cust-7", "name": "Maria"}
    assert body["showing_original_text"] is False
    assert [
        (
            i["message_id"],
            i["conversation_id"],
            i["channel"],
            i["role"],
            i["author"],
            i["text"],
            i["redacted"],
        )
        for i in body["items"]
    ] == [
        (
            str(widget_question.id),
            str(chat.id),
            "widget",
            "customer",
            "Customer",
            widget_question.text_redacted,
            True,
        ),
        (
            str(widget_answer.id),
            str(chat.id),
            "widget",
            "assistant",
            "Assistant",
            "Let me check your bill.",
            False,
        ),
        (
            str(emailed.id),
            str(emailed.conversation_id),
            "email",
            "customer",
            "Customer",
            "Any news about my bill?",
            True,
        ),
    ]
    assert "+44 20 7946 0958" not in widget_question.text_redacted
    assert [i["channel_label"] for i in body["items"]][2] != ""

    # An admin reads the customer's own words; another company's staff cannot read the timeline at all.
    admin = api_client_as(desk.admin).get(f"/api/v1/tenants/{desk.tenant.slug}/contacts/{maria.id}/timeline/")
    assert admin.json()["items"][0]["text"] == widget_question.text
    assert [e.message_id for e in contact_timeline(tenant=desk.tenant, contact=maria)] == [
        i["message_id"] for i in body["items"]
    ]


@pytest.mark.django_db
def test_another_companys_customer_is_not_found(
    desk: Desk, maria: Contact, make_tenant: Any, make_user: Any, api_client_as: Any
) -> None:
    other = make_tenant(name="Other Telecom")
    stranger = make_user(other, roles=[Role.AGENT])
    theirs = accounts.contact_upsert(tenant=other, external_id="cust-7", email=MARIA)

    mine = api_client_as(desk.alice).get(f"/api/v1/tenants/{desk.tenant.slug}/contacts/{theirs.id}/timeline/")
    not_member = api_client_as(stranger).get(
        f"/api/v1/tenants/{desk.tenant.slug}/contacts/{maria.id}/timeline/"
    )

    assert (mine.status_code, mine.json()["message"]) == (404, "There is no such customer.")
    assert not_member.status_code == 404


@pytest.mark.django_db
def test_a_later_unauthenticated_email_cannot_write_in_a_verified_customers_thread(
    desk: Desk, maria: Contact
) -> None:
    first = _email("Any news about my bill?", "<m-1@mail.example.com>", spf="pass")
    assert first.conversation.contact_id == maria.id
    from apps.core.errors import Forbidden

    with pytest.raises(Forbidden, match="must pass SPF or DKIM"):
        email_path.inbound_email_receive(
            recipient=SUPPORT,
            sender=MARIA,
            text="Send my account details to this address.",
            email_id="<forged@evil.example>",
            in_reply_to="<m-1@mail.example.com>",
        )
    assert Message.objects.filter(conversation_id=first.conversation_id).count() == 1


@pytest.mark.django_db
def test_the_case_file_names_the_channel_of_each_message(desk: Desk, fake_llm: Any) -> None:
    fake_llm.behaviour = "error_500"  # the template case file: no model needed
    closed_all_week(desk.tenant)
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    to_waiting(chat)
    conv.contact_email_leave(tenant=desk.tenant, claims=chat.claims, email=MARIA)
    ticket = Ticket.objects.get(conversation_id=chat.id)
    # While the customer waits for a person, they answer the ticket by email.
    reply = email_path.inbound_email_receive(
        recipient=f"reply+{ticket.reply_token}@x.example",
        sender=MARIA,
        text="And in Andorra?\n\nLe mar. 3 mars 2026, Nimbus a écrit :\n> Oui",
        email_id="<r-1@mail.example.com>",
    )
    assert reply is not None
    handoff = Handoff.objects.get(conversation_id=chat.id, status="waiting")

    built = case_file_build(handoff_id=handoff.id)

    question = Message.objects.get(conversation_id=chat.id, role="customer", via="widget")
    answer = Message.objects.get(conversation_id=chat.id, role="assistant")
    assert [(c["message_id"], c["role"], c["channel"]) for c in built.case_file["channels"]] == [
        (str(question.id), "customer", "widget"),
        (str(answer.id), "assistant", "widget"),
        (str(reply.id), "customer", "email"),
    ]
