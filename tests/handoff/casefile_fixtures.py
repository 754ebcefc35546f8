"""A conversation worth a case file: a verified customer who gave an email address and a phone number, an
answer the assistant abstained from and one it quoted from a published policy (both real assistant turns,
in the `quote` style, so the model is asked for nothing before the case file), an order found and one not
found, then a handoff because that tool failed. The company's answer threshold is set here (0.4), so what
the case file reports about confidence does not move with the deployment's default.

The turns run the way `manage.py ask` runs them, so the tests using this need `transaction=True`: the
pipeline's database calls happen in other threads. The tool runs are executed inline, as a tools worker
would execute them, and never queued.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from apps.accounts import services as accounts
from apps.accounts.models import Tenant
from apps.conversations import services
from apps.conversations.assistant import assistant_turn_run
from apps.conversations.models import Conversation, Message
from apps.conversations.ownership import HandoffTrigger, conversation_handoff
from apps.handoff.models import Handoff
from apps.llm.clients import close_async_clients
from apps.tools import execution
from apps.tools import services as tools
from apps.tools.models import ToolRun
from tests.handoff.conftest import evidence_of, quote_of
from tests.tools.conftest import tools_enable

EMAIL, PHONE = "jane.roe@example.com", "+1 415 555 0132"
PARROT = f"Can I bring my parrot to the opera? Write to me at {EMAIL} or call {PHONE}."
ROAMING = "Is roaming in the European Union free? My last bill was bad."
THRESHOLD = 0.4
CUSTOMER = "cust-1001"
FOUND, MISSING = "NM-100234", "NM-999999"


@dataclass
class Story:
    tenant: Tenant
    conversation: Conversation
    abstained: Message
    answered: Message
    found: ToolRun
    failed: ToolRun


def ask(conversation: Conversation, text: str) -> Message:
    """One customer message and the assistant's real turn for it."""
    receipt = services.cli_message_receive(
        conversation=conversation, client_msg_id=f"t-{uuid.uuid4()}", text=text
    )

    async def turn() -> Any:
        try:
            return await assistant_turn_run(
                tenant=conversation.tenant, conversation_id=conversation.id, turn=receipt.message.turn
            )
        finally:
            await close_async_clients()

    result = asyncio.run(turn())
    assert result.message is not None
    return Message.objects.get(id=result.message.id)


def tool_run(tenant: Tenant, conversation: Conversation, order: str, monkeypatch: Any) -> ToolRun:
    """The assistant's order lookup, executed here as the tools worker would execute it."""
    monkeypatch.setattr(tools, "run_enqueue", lambda run: None)
    run = tools.tool_call_propose(
        tenant=tenant,
        call=tools.ToolCallRequest(
            call_id=f"call_{order}", name="order_lookup", arguments=json.dumps({"order_number": order})
        ),
        index=0,
        customer=CUSTOMER,
        conversation_ref=conversation.id,
        message_ref=uuid.uuid4(),
    )
    return execution.tool_run_execute(run_id=str(run.id))


def story_tell(tenant: Tenant, fake_llm: Any, monkeypatch: Any) -> Story:
    contact = accounts.contact_upsert(tenant=tenant, external_id=CUSTOMER, name="Aiko Tanaka")
    contact.tier = "premium"
    contact.save(update_fields=["tier", "updated_at"])
    accounts.tenant_assistant_configure(tenant=tenant, abstain_threshold=THRESHOLD)
    accounts.tenant_answers_configure(tenant=tenant, answer_style="quote")
    conversation = services.cli_conversation_open(tenant=tenant, customer=CUSTOMER, conversation_id=None)
    abstained = ask(conversation, PARROT)
    answered = ask(conversation, ROAMING)
    assert (abstained.abstained, answered.status, answered.abstained) == (True, "complete", False)
    evidence = evidence_of(answered.id)
    assert answered.text == answered.text_redacted == quote_of(evidence)
    assert "in all European Union countries at no extra charge" in answered.text
    # one citation per passage: units quoted from the same passage share its number
    assert [(c["n"], c["chunk_id"]) for c in answered.citations] == list(
        {e["n"]: (e["n"], e["chunk_id"]) for e in evidence}.values()
    )
    assert fake_llm.chat_requests == []  # quoted answers: the case file will be the model's only request
    tools_enable(tenant)  # after the turns: the assistant's own tool decisions are not this test's subject
    found = tool_run(tenant, conversation, FOUND, monkeypatch)
    failed = tool_run(tenant, conversation, MISSING, monkeypatch)
    assert (found.status, failed.status, failed.error_code) == ("done", "failed", "not_found")
    conversation.refresh_from_db()
    return Story(tenant, conversation, abstained, answered, found, failed)


def hand_off(story: Story) -> Handoff:
    change = conversation_handoff(
        conversation_id=story.conversation.id,
        trigger=HandoffTrigger(reason="tool_failed", detail="order_lookup: not_found", priority=1),
    )
    assert change is not None
    return Handoff.objects.get(conversation=story.conversation)


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}: still not true after {timeout}s")
