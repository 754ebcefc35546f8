"""Memory across sessions, end to end: widget sockets through the real ASGI application, the message's
after-commit listener, and the prompt the fake model server receives in the next session.

Without consent nothing said in one session reaches the next; with it, a preference said in session 1 is
in session 2's prompt under "What the customer told us before", until the customer deletes it.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async

from apps.accounts.models import Tenant
from apps.conversations.models import Conversation
from apps.conversations.ownership import conversation_transition
from apps.conversations.prompting import REMEMBERED_HEADING
from apps.memory import selectors, services
from apps.memory.consent import CONSENT_VERSION
from apps.memory.models import MemoryFact
from apps.memory.subjects import subject_of_session
from tests.conversations.conftest import (
    SUPPORTED_EU,
    aanswers_configure,
    compose_requests,
    model_composes,
    widget_connect,
)
from tests.memory.conftest import customer_session, guest_session

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.anyio]

STATEMENT = "I prefer to be contacted by email. Do I pay extra for roaming in the European Union?"
QUESTION = "Do I pay extra for roaming in the European Union?"
REMEMBERED = f'{REMEMBERED_HEADING}:\n"""\n- I prefer to be contacted by email\n"""'


async def ask(tenant: Tenant, token: str, text: str) -> dict[str, Any]:
    widget, _ = await widget_connect(tenant, token=token)
    try:
        await widget.send({"type": "message", "text": text, "client_msg_id": str(uuid.uuid4())})
        ack = await widget.until(lambda f: f["type"] == "ack")
        # A returning chat replays its earlier answers first: wait for the answer to this message.
        return await widget.until(
            lambda f: f["type"] == "assistant.completed" and f["seq"] > ack["seq"], timeout=40
        )
    finally:
        await widget.close()


def last_prompt(fake_llm) -> str:
    """The user message of the latest compose request the model server received."""
    return str(compose_requests(fake_llm)[-1]["messages"][-1]["content"])


@database_sync_to_async
def resolve(session) -> None:
    conversation_transition(
        conversation_id=session.claims.conversation_id,
        tenant_id=session.claims.tenant_id,
        to=Conversation.Status.RESOLVED,
        event="conversation.resolved",
    )


@database_sync_to_async
def answer(session, remember: bool) -> None:
    services.memory_consent_answer(
        subject=subject_of_session(session.claims), remember=remember, version=CONSENT_VERSION
    )


@database_sync_to_async
def facts_of(session) -> list[str]:
    return [f.text for f in selectors.memory_facts(subject=subject_of_session(session.claims))]


@pytest.fixture
async def composing(kb_tenant, fake_llm) -> Tenant:
    await aanswers_configure(kb_tenant, style="compose")
    model_composes(fake_llm, SUPPORTED_EU)
    return kb_tenant


async def test_without_consent_nothing_said_survives_the_session(composing, fake_llm):
    first = await database_sync_to_async(customer_session)(composing, "cust-1")
    await ask(composing, first.token, STATEMENT)
    assert REMEMBERED_HEADING not in last_prompt(fake_llm)
    await resolve(first)

    second = await database_sync_to_async(customer_session)(composing, "cust-1")
    assert second.claims.conversation_id != first.claims.conversation_id  # a new session
    await ask(composing, second.token, QUESTION)
    prompt = last_prompt(fake_llm)
    assert REMEMBERED_HEADING not in prompt
    assert "email" not in prompt
    assert await MemoryFact.objects.acount() == 0


async def test_with_consent_a_preference_is_in_the_next_sessions_prompt_until_deleted(composing, fake_llm):
    first = await database_sync_to_async(customer_session)(composing, "cust-1")
    await answer(first, True)
    await ask(composing, first.token, STATEMENT)
    # Said in this session: the conversation's own, not yet "told us before".
    assert REMEMBERED_HEADING not in last_prompt(fake_llm)
    assert await facts_of(first) == ["I prefer to be contacted by email"]
    await resolve(first)

    second = await database_sync_to_async(customer_session)(composing, "cust-1")
    assert second.claims.conversation_id != first.claims.conversation_id
    await ask(composing, second.token, QUESTION)
    request = compose_requests(fake_llm)[-1]
    assert REMEMBERED in request["messages"][-1]["content"]
    assert "never cite it" in request["messages"][0]["content"]
    # The question is what it was: not a fact (a question), and the prompt's last part.
    assert await facts_of(second) == ["I prefer to be contacted by email"]

    fact = await MemoryFact.objects.aget()
    await database_sync_to_async(services.memory_fact_delete)(
        subject=subject_of_session(second.claims), fact=fact
    )
    await resolve(second)
    third = await database_sync_to_async(customer_session)(composing, "cust-1")
    await ask(composing, third.token, QUESTION)
    assert REMEMBERED_HEADING not in last_prompt(fake_llm)
    assert "email" not in last_prompt(fake_llm)


async def test_a_guests_memory_reaches_the_next_episode_of_their_chat_and_no_other_visitor(
    composing, fake_llm
):
    guest = await database_sync_to_async(guest_session)(composing)
    await answer(guest, True)
    await ask(composing, guest.token, STATEMENT)
    await resolve(guest)
    # The same browser writes again after the chat was resolved: a new episode, memory from before.
    await ask(composing, guest.token, QUESTION)
    assert REMEMBERED in last_prompt(fake_llm)

    stranger = await database_sync_to_async(guest_session)(composing)
    await answer(stranger, True)
    await ask(composing, stranger.token, QUESTION)
    assert REMEMBERED_HEADING not in last_prompt(fake_llm)


async def test_remembered_statements_fit_the_token_cap_newest_first(composing, fake_llm):
    customer = await database_sync_to_async(customer_session)(composing, "cust-5")
    await answer(customer, True)
    subject = subject_of_session(customer.claims)
    for n in range(12):
        await MemoryFact.objects.acreate(
            **subject.fields(),
            kind="preference",
            key=f"text:option {n}",
            text=f"I prefer option {n} for paper bills",
            source_message_id=uuid.uuid4(),
            source_conversation_id=uuid.uuid4(),
            source_turn=1,
        )
    await ask(composing, customer.token, QUESTION)
    block = last_prompt(fake_llm).split(REMEMBERED_HEADING, 1)[1]
    kept = [line for line in block.splitlines() if line.startswith("- ")]
    assert 0 < len(kept) < 12  # not all of them fit in REMEMBERED_TOKENS
    assert kept[-1] == "- I prefer option 11 for paper bills"  # the newest always; the oldest dropped
    assert kept == [f"- I prefer option {n} for paper bills" for n in range(12 - len(kept), 12)]
