"""Nobody can answer live: the customer leaves an email, gets a ticket, the agent's reply is emailed once
with a Reply-To that finds the conversation again, and the customer's email reply joins the conversation
(once, quoted history cut off, only from the address they left) and goes to a person."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async

from apps.conversations import services as conv
from apps.conversations.models import Conversation, ConversationEvent, Message
from apps.core.errors import BadRequest, Forbidden, NotFound
from apps.handoff import email_path, reply_actions, services, tasks
from apps.handoff.email_path import email_reply_text, inbound_email_receive
from apps.handoff.models import SentEmail, Ticket
from tests.conversations.conftest import widget_connect
from tests.handoff.conftest import Chat, Desk, chat_start, closed_all_week, to_human, to_waiting

EMAIL = "maria@example.com"


def _offline_ticket(desk: Desk, email: str = EMAIL) -> tuple[Chat, Ticket]:
    """A customer queued while the desk is closed, who left their email."""
    closed_all_week(desk.tenant)
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    to_waiting(chat)
    conv.contact_email_leave(tenant=desk.tenant, claims=chat.claims, email=email)
    return chat, Ticket.objects.get(conversation_id=chat.id)


def _state(chat: Chat) -> dict[str, Any]:
    row = chat.row()
    return {
        "conversation": (row.status, row.agent_id, row.last_seq, row.turn, row.episode),
        "messages": list(Message.objects.filter(conversation_id=chat.id).values_list("id", flat=True)),
        "events": chat.events(),
        "tickets": list(Ticket.objects.filter(conversation_id=chat.id).values_list("status", "email")),
        "handoffs": [(h.status, h.reason) for h in chat.handoffs()],
    }


# ---- leaving an email over the widget --------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.django_db(transaction=True)
async def test_an_offline_customer_leaves_an_email_and_gets_a_numbered_ticket(desk: Desk) -> None:
    tenant = desk.tenant
    await database_sync_to_async(closed_all_week)(tenant)
    numbers = []
    for address in ("maria@example.com", "tom@example.org"):
        session = await database_sync_to_async(conv.widget_session_open)(
            tenant=tenant, token=None, claim=None
        )
        widget, _ = await widget_connect(tenant, token=session.token)
        try:
            await widget.send({"type": "handoff.request", "client_msg_id": "h1"})
            ack = await widget.until(lambda f: f["type"] == "ack" and f["client_msg_id"] == "h1")
            status = await widget.until(lambda f: f["type"] == "handoff.status")
            assert (ack["seq"], status["seq"]) == (1, 2)
            assert (status["state"], status["why"], status["ask_email"]) == ("offline", "closed", True)

            await widget.send({"type": "handoff.email", "email": "not an email", "client_msg_id": "e1"})
            error = await widget.until(lambda f: f["type"] == "error")
            assert (error["code"], error["client_msg_id"], error["message"]) == (
                "bad_request",
                "e1",
                "That doesn't look like an email address.",
            )
            assert not await Ticket.objects.filter(conversation_id=session.claims.conversation_id).aexists()

            await widget.send({"type": "handoff.email", "email": f" {address} ", "client_msg_id": "e2"})
            ack = await widget.until(lambda f: f["type"] == "ack" and f["client_msg_id"] == "e2")
            saved = await widget.until(lambda f: f["type"] == "handoff.email_saved")
            ticket = await widget.until(lambda f: f["type"] == "handoff.ticket")
            masked = address[0] + "***@" + address.split("@")[1]
            assert (ack["seq"], saved["seq"], saved["email"]) == (3, 3, masked)
            assert (ticket["seq"], ticket["email"]) == (4, masked)
            numbers.append(ticket["ticket"])
        finally:
            await widget.close()
        conversation = await Conversation.objects.aget(id=session.claims.conversation_id)
        assert conversation.contact_email == address
        stored = await Ticket.objects.aget(conversation_id=session.claims.conversation_id)
        assert (stored.number, stored.email, stored.status) == (ticket["ticket"], address, "open")
    assert numbers == [1001, 1002]


@pytest.mark.django_db
def test_leaving_another_email_keeps_the_ticket_and_its_number(desk: Desk, make_tenant: Any) -> None:
    chat, ticket = _offline_ticket(desk)
    conv.contact_email_leave(tenant=desk.tenant, claims=chat.claims, email="maria.new@example.com")
    [again] = Ticket.objects.filter(conversation_id=chat.id)
    assert (again.id, again.number, again.email, again.reply_token) == (
        ticket.id,
        1001,
        "maria.new@example.com",
        ticket.reply_token,
    )
    # Numbers are per company.
    other = make_tenant(origins=["https://other.example"])
    closed_all_week(other)
    elsewhere = chat_start(other, "Hello")
    conv.contact_email_leave(tenant=other, claims=elsewhere.claims, email=EMAIL)
    assert Ticket.objects.get(conversation_id=elsewhere.id).number == 1001


# ---- the agent's reply by email ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_agents_reply_is_emailed_once_with_a_reply_address(
    desk: Desk,
    settings: Any,
    mailoutbox: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.HANDOFF_REPLY_DOMAIN = "mail.nimbus.example"
    settings.DEFAULT_FROM_EMAIL = "support@nimbus.example"
    chat, ticket = _offline_ticket(desk)
    to_human(chat, desk.alice)
    queued: list[Any] = []
    monkeypatch.setattr(reply_actions, "_email_enqueue", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        reply = services.agent_reply(
            tenant=desk.tenant,
            conversation_id=chat.id,
            agent=desk.alice,
            text="Yes, roaming in Spain is included.",
            client_msg_id="r1",
        )
    assert queued == [reply.message.id]  # queued after the commit, for the worker
    assert mailoutbox == []

    assert tasks.ticket_reply_send(str(reply.message.id)) is True
    assert tasks.ticket_reply_send(str(reply.message.id)) is False  # redelivered: nothing sent again
    [email] = mailoutbox
    assert email.to == [EMAIL]
    assert email.from_email == "support@nimbus.example"
    assert email.reply_to == [f"reply+{ticket.reply_token}@mail.nimbus.example"]
    assert email.subject == "[Nimbus Telecom #1001] A reply to your question"
    assert email.body.startswith("Yes, roaming in Spain is included.\n\n— Alice, Nimbus Telecom")
    assert email.extra_headers["X-Helpdesk-Ticket"] == "1001"
    ticket.refresh_from_db()
    assert ticket.status == "answered"
    assert ticket.answered_at is not None
    [sent] = SentEmail.objects.all()
    assert (sent.message_id, sent.ticket_id) == (reply.message.id, ticket.id)
    assert sent.sent_at is not None


@pytest.mark.django_db
def test_replies_without_a_ticket_are_not_emailed(
    desk: Desk,
    mailoutbox: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    to_human(chat, desk.alice)
    queued: list[Any] = []
    monkeypatch.setattr(reply_actions, "_email_enqueue", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        reply = services.agent_reply(
            tenant=desk.tenant, conversation_id=chat.id, agent=desk.alice, text="Hi!", client_msg_id="r1"
        )
    assert queued == []
    assert email_path.ticket_reply_email(message_id=reply.message.id) is False
    customer = Message.objects.filter(conversation_id=chat.id, role="customer").first()
    assert customer is not None
    assert email_path.ticket_reply_email(message_id=customer.id) is False  # only agents' replies go out
    assert (mailoutbox, SentEmail.objects.count()) == ([], 0)


# ---- the customer's email reply ---------------------------------------------------------------------------


REPLY = """Great, thanks! One more question: does it work in Andorra?

On Tue, 3 Mar 2026 at 10:00, Nimbus Telecom <support@nimbus.example> wrote:
> Yes, roaming in Spain is included.
> -- Alice
"""


@pytest.mark.django_db
def test_the_customers_email_reply_joins_the_conversation_and_goes_to_a_person(desk: Desk) -> None:
    chat, ticket = _offline_ticket(desk)
    to_human(chat, desk.alice)
    services.agent_reply(
        tenant=desk.tenant, conversation_id=chat.id, agent=desk.alice, text="Included.", client_msg_id="r1"
    )
    services.conversation_resolve(tenant=desk.tenant, conversation_id=chat.id, actor=desk.alice)
    assert Ticket.objects.get(id=ticket.id).status == "closed"
    last_seq = chat.row().last_seq

    message = inbound_email_receive(
        recipient=f"Nimbus <reply+{ticket.reply_token}@mail.nimbus.example>",
        sender="Maria Garcia <Maria@Example.com>",
        text=REPLY,
        email_id="<abc@mail.example.com>",
    )

    assert message is not None
    assert (message.role, message.via, message.text) == (
        "customer",
        "email",
        "Great, thanks! One more question: does it work in Andorra?",
    )
    row = chat.row()
    assert (row.status, row.agent_id, row.episode) == ("waiting", None, 2)
    assert [(t, d.get("reason")) for _, t, d in chat.events(after=last_seq)] == [
        ("conversation.reopened", None),
        ("message.created", None),
        ("handoff.requested", "email_reply"),
        ("handoff.status", None),
    ]
    assert [(h.status, h.reason) for h in chat.handoffs()] == [
        ("resolved", "customer_request"),
        ("waiting", "email_reply"),
    ]
    assert Ticket.objects.get(id=ticket.id).status == "open"
    event = ConversationEvent.objects.get(conversation_id=chat.id, message=message)
    from apps.conversations.selectors import event_render

    assert event_render(event)["message"]["via"] == "email"

    # The same email delivered again is stored once, and changes nothing.
    before = _state(chat)
    again = inbound_email_receive(
        recipient=f"reply+{ticket.reply_token}@mail.nimbus.example",
        sender=EMAIL,
        text=REPLY,
        email_id="<abc@mail.example.com>",
    )
    assert again is not None
    assert again.id == message.id
    assert _state(chat) == before


@pytest.mark.django_db
def test_an_email_reply_to_a_person_who_has_the_conversation_stays_with_them(desk: Desk) -> None:
    chat, ticket = _offline_ticket(desk)
    to_human(chat, desk.alice)
    inbound_email_receive(
        recipient=f"reply+{ticket.reply_token}@x.example", sender=EMAIL, text="Still there?", email_id="m1"
    )
    row = chat.row()
    assert (row.status, row.agent_id) == ("human", desk.alice.id)
    assert [h.status for h in chat.handoffs()] == ["claimed"]


@pytest.mark.django_db
def test_email_replies_that_do_not_belong_are_refused_and_nothing_is_stored(desk: Desk) -> None:
    chat, ticket = _offline_ticket(desk)
    services.conversation_resolve(tenant=desk.tenant, conversation_id=chat.id, actor=desk.admin)
    before = _state(chat)
    with pytest.raises(Forbidden):
        inbound_email_receive(
            recipient=f"reply+{ticket.reply_token}@x.example",
            sender="Mallory <mallory@evil.example>",
            text="Change my plan",
            email_id="m1",
        )
    with pytest.raises(NotFound):
        inbound_email_receive(
            recipient="reply+notatokenatall@x.example", sender=EMAIL, text="Hi", email_id="m2"
        )
    with pytest.raises(NotFound):
        inbound_email_receive(recipient="support@x.example", sender=EMAIL, text="Hi", email_id="m3")
    with pytest.raises(BadRequest):  # nothing but the quoted history
        inbound_email_receive(
            recipient=f"reply+{ticket.reply_token}@x.example",
            sender=EMAIL,
            text="> Yes, roaming in Spain is included.\n",
            email_id="m4",
        )
    assert _state(chat) == before


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("Thanks!\r\n\r\nOn Mon, 2 Mar 2026, Nimbus wrote:\r\n> Hello", "Thanks!"),
        ("Thanks!\n> quoted", "Thanks!"),
        ("Line one\nLine two\n\n-- \nMaria Garcia\n+44 20 7946 0958", "Line one\nLine two"),
        ("Thanks!\n--\nMaria", "Thanks!"),
        ("Yes please\n\n-----Original Message-----\nFrom: Nimbus", "Yes please"),
        ("  Just this  ", "Just this"),
        (
            "Does it work in Andorra?\n\nOn Tue, 3 Mar 2026 at 10:00, Nimbus Telecom <\n"
            "support@nimbus.example> wrote:\n\n> Yes, roaming in Spain is included.",
            "Does it work in Andorra?",
        ),
    ],
)
def test_quoted_history_and_signatures_are_cut_from_email_replies(text: str, kept: str) -> None:
    assert email_reply_text(text) == kept
