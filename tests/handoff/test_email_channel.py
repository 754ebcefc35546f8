"""Email the assistant answers (docs/architecture/channels.md, "Email"): mail to a company's support
address starts a conversation on the email channel, the assistant answers it once by a threaded email
(through the real webhook, a Celery worker in this process, and Django's in-memory mail outbox), replies in
the thread continue it, and nothing crosses from one company to another."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from apps.accounts.models import Tenant
from apps.conversations.models import Conversation, ConversationEvent, Message
from apps.handoff.models import EmailThread, EmailThreadMessage, Handoff
from tests.conftest import celery_worker_in_process

INBOUND = "/api/v1/inbound-email/"
SECRET = "inbound-5be1c0de77"
SUPPORT = "help@nimbus.example"
MARIA = "maria@example.com"
QUESTION = "Is roaming free in the European Union?"
FIRST_ID = "CAF-first-1@mail.example.com"


def email_payload(**overrides: Any) -> dict[str, Any]:
    return {
        "recipient": f"Nimbus Support <{SUPPORT}>",
        "sender": f"Maria Garcia <{MARIA.title()}>",
        "subject": "Roaming",
        "text": f"Hello,\n\n{QUESTION}\n\nBest regards,\nMaria Garcia\n",
        "message_id": f"<{FIRST_ID}>",
        **overrides,
    }


def until(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def email_state() -> dict[str, Any]:
    return {
        "conversations": sorted(Conversation.objects.values_list("id", "status", "turn")),
        "messages": sorted(Message.objects.values_list("id", "status")),
        "events": ConversationEvent.objects.count(),
        "threads": sorted(EmailThreadMessage.objects.values_list("rfc_message_id", flat=True)),
    }


@pytest.fixture
def post(settings: Any, api_anonymous: Any) -> Callable[..., Any]:
    settings.INBOUND_EMAIL_SECRET = SECRET
    settings.DEFAULT_FROM_EMAIL = "desk@nimbus-mail.example"
    settings.HANDOFF_REPLY_DOMAIN = "mail.nimbus.example"

    def send(payload: dict[str, Any]) -> Any:
        return api_anonymous.post(INBOUND, payload, format="json", HTTP_AUTHORIZATION=f"Bearer {SECRET}")

    return send


@pytest.fixture
def email_tenant(make_tenant: Any, settings: Any) -> Tenant:
    # No published knowledge: the assistant's answer is its abstention (a complete answer with text), and
    # it keeps the conversation however often it abstains, so each email gets exactly one answer.
    settings.HANDOFF_AFTER_UNANSWERED = 0
    tenant = make_tenant(name="Nimbus Telecom")
    tenant.support_email = SUPPORT
    tenant.email_assistant_enabled = True
    tenant.save(update_fields=["support_email", "email_assistant_enabled"])
    return tenant


@pytest.fixture
def worker(fake_llm: Any) -> Iterator[None]:
    # The default queue (answers, deliveries) and the handoff app's (case files, ticket emails).
    with celery_worker_in_process(queues=("celery", "handoff")):
        yield


def answered(conversation_id: Any, count: int) -> list[Message]:
    return until(
        lambda: (
            rows
            if len(
                rows := list(
                    Message.objects.filter(
                        conversation_id=conversation_id, role="assistant", status="complete"
                    ).order_by("created_at")
                )
            )
            >= count
            else None
        )
    )


def sent_for(message: Message) -> EmailThreadMessage:
    """Our email of `message`, once the delivery that sent it has committed."""
    return until(
        lambda: EmailThreadMessage.objects.filter(
            message_id=message.id, inbound=False, sent_at__isnull=False
        ).first()
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_email_starts_a_conversation_the_assistant_answers_once_by_a_threaded_email(
    email_tenant: Tenant, post: Callable[..., Any], worker: None, mailoutbox: list[Any]
) -> None:
    first = post(email_payload())

    assert first.status_code == 202, first.content
    customer = Message.objects.get(id=first.json()["message_id"])
    conversation = customer.conversation
    assert (conversation.tenant_id, conversation.channel, conversation.contact_id) == (
        email_tenant.id,
        "email",
        None,
    )
    assert (customer.role, customer.via, customer.text) == ("customer", "email", f"Hello,\n\n{QUESTION}")
    [answer] = answered(conversation.id, 1)
    [email] = until(lambda: list(mailoutbox))
    assert email.to == [MARIA]
    assert email.reply_to == [SUPPORT]
    assert email.subject == "Re: Roaming"
    assert email.body.startswith(answer.text + "\n\n— Nimbus Telecom's automated assistant")
    ours = sent_for(answer)
    assert email.extra_headers["Message-ID"] == f"<{ours.rfc_message_id}>"
    assert email.extra_headers["In-Reply-To"] == f"<{FIRST_ID}>"
    assert email.extra_headers["References"] == f"<{FIRST_ID}>"
    assert email.extra_headers["Auto-Submitted"] == "auto-replied"

    # The provider delivers the same email again: stored once, nothing answered or sent again.
    again = post(email_payload())
    assert (again.status_code, again.json()) == (202, first.json())

    # Maria answers in the thread (Gmail quoting, in German): the same conversation goes on.
    second = post(
        email_payload(
            message_id="<CAF-second-2@mail.example.com>",
            subject="Re: Roaming",
            in_reply_to=f"<{ours.rfc_message_id}>",
            references=f"<{FIRST_ID}> <{ours.rfc_message_id}>",
            text=(
                "Und muss ich Roaming vorher einschalten?\n\n"
                f"Am Di., 3. März 2026 um 10:00 Uhr schrieb Nimbus <{SUPPORT}>:\n> {answer.text}\n"
            ),
        )
    )
    assert second.status_code == 202, second.content
    reply = Message.objects.get(id=second.json()["message_id"])
    assert (reply.conversation_id, reply.turn, reply.text) == (
        conversation.id,
        2,
        "Und muss ich Roaming vorher einschalten?",
    )
    answers = answered(conversation.id, 2)
    until(lambda: len(mailoutbox) == 2)
    time.sleep(0.5)  # a duplicated task would send within this
    assert len(mailoutbox) == 2
    threaded = mailoutbox[1]
    ours2 = sent_for(answers[1])
    assert threaded.extra_headers["In-Reply-To"] == "<CAF-second-2@mail.example.com>"
    assert threaded.extra_headers["References"] == (
        f"<{FIRST_ID}> <{ours.rfc_message_id}> <CAF-second-2@mail.example.com>"
    )
    assert threaded.extra_headers["Message-ID"] == f"<{ours2.rfc_message_id}>"
    assert Conversation.objects.filter(tenant=email_tenant).count() == 1
    assert Message.objects.filter(conversation=conversation, role="customer").count() == 2


@pytest.mark.django_db
def test_without_the_setting_mail_to_the_support_address_is_refused_and_nothing_is_stored(
    email_tenant: Tenant, post: Callable[..., Any], mailoutbox: list[Any]
) -> None:
    email_tenant.email_assistant_enabled = False
    email_tenant.save(update_fields=["email_assistant_enabled"])
    before = email_state()

    response = post(email_payload())

    assert (response.status_code, response.json()["message"]) == (
        404,
        "No conversation has that reply address.",
    )
    assert email_state() == before
    assert mailoutbox == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"headers": {"Auto-Submitted": "auto-replied"}},
        {"headers": {"Precedence": "bulk"}},
        {"headers": {"precedence": "Auto_Reply"}},
        {"headers": {"X-Autoreply": "yes"}},
        {"sender": "Nimbus Desk <desk@nimbus-mail.example>"},
        {"sender": f"Nimbus Support <{SUPPORT.upper()}>"},
        {"sender": "MAILER-DAEMON@mail.example.com"},
    ],
    ids=["auto-submitted", "bulk", "auto_reply", "x-autoreply", "our-from", "support-from", "bounce"],
)
@pytest.mark.django_db
def test_automatic_mail_is_ignored_so_robots_never_answer_each_other(
    email_tenant: Tenant, post: Callable[..., Any], mailoutbox: list[Any], overrides: dict[str, Any]
) -> None:
    before = email_state()

    response = post(email_payload(**overrides))

    assert (response.status_code, response.json()) == (
        202,
        {"message_id": None, "ignored": "automatic email"},
    )
    assert email_state() == before
    assert mailoutbox == []


@pytest.mark.django_db
def test_another_companys_thread_is_never_joined_and_strangers_cannot_write_in_a_thread(
    email_tenant: Tenant, make_tenant: Any, post: Callable[..., Any], mailoutbox: list[Any]
) -> None:
    first = post(email_payload())
    assert first.status_code == 202
    conversation = Message.objects.get(id=first.json()["message_id"]).conversation
    theirs = make_tenant(name="Other Telecom")
    theirs.support_email = "help@other.example"
    theirs.email_assistant_enabled = True
    theirs.save(update_fields=["support_email", "email_assistant_enabled"])
    nimbus_before = list(Message.objects.filter(conversation=conversation).values_list("id", flat=True))

    # Mail to the other company naming Nimbus's thread starts the other company's own conversation.
    elsewhere = post(
        email_payload(
            recipient="help@other.example", message_id="<x-1@mail.example.com>", in_reply_to=f"<{FIRST_ID}>"
        )
    )
    assert elsewhere.status_code == 202
    other = Message.objects.get(id=elsewhere.json()["message_id"]).conversation
    assert (other.tenant_id, other.id != conversation.id) == (theirs.id, True)
    assert (
        list(Message.objects.filter(conversation=conversation).values_list("id", flat=True)) == nimbus_before
    )

    # A stranger replying in Maria's thread is refused; an address nobody receives at is not found.
    before = email_state()
    stranger = post(
        email_payload(sender="eve@example.net", message_id="<eve-1@example.net>", in_reply_to=f"<{FIRST_ID}>")
    )
    nobody = post(email_payload(recipient="help@nowhere.example", message_id="<n-1@mail.example.com>"))
    empty = post(email_payload(message_id="<q-1@mail.example.com>", text="> only the quote\n"))
    assert (stranger.status_code, stranger.json()["message"]) == (
        403,
        "Replies are accepted only from the address that started the conversation.",
    )
    assert (nobody.status_code, nobody.json()["message"]) == (
        404,
        "No conversation has that reply address.",
    )
    assert (empty.status_code, empty.json()["message"]) == (400, "The email holds no new text.")
    assert email_state() == before
    assert EmailThread.objects.filter(tenant=email_tenant).count() == 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_asking_for_a_person_by_email_hands_off_and_the_agents_reply_is_emailed_in_the_thread(
    email_tenant: Tenant, make_user: Any, post: Callable[..., Any], worker: None, mailoutbox: list[Any]
) -> None:
    from apps.accounts.models import Role
    from apps.handoff import services

    alice = make_user(email_tenant, roles=[Role.AGENT], username="alice", first_name="Alice")
    first = post(email_payload(text="I want to talk to a person about my bill, please."))
    assert first.status_code == 202
    conversation = Message.objects.get(id=first.json()["message_id"]).conversation
    handoff = until(lambda: Handoff.objects.filter(conversation=conversation).first())
    assert handoff.reason == "customer_request"
    # The assistant's handover note goes out once by email; then a person answers.
    until(lambda: len(mailoutbox) == 1)
    services.conversation_take_over(tenant=email_tenant, conversation_id=conversation.id, agent=alice)
    reply = services.agent_reply(
        tenant=email_tenant,
        conversation_id=conversation.id,
        agent=alice,
        text="Hi Maria, I have your bill open.",
        client_msg_id="a1",
    )
    until(lambda: len(mailoutbox) == 2)
    time.sleep(0.5)  # the ticket opened while nobody was online must not email it a second time
    assert len(mailoutbox) == 2
    agent_email = mailoutbox[1]
    assert agent_email.body.startswith("Hi Maria, I have your bill open.\n\n— Alice, Nimbus Telecom")
    assert "Auto-Submitted" not in agent_email.extra_headers
    assert agent_email.extra_headers["In-Reply-To"] == f"<{FIRST_ID}>"
    assert sent_for(reply.message).thread.conversation_id == conversation.id
