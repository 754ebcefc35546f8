"""`manage.py ask`: the assistant's pipeline from the command line, against the scripted LLM."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.accounts import services as accounts
from apps.conversations.models import Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)

ANSWER = "EU roaming is included at no extra charge [1]."


def _ask(*args: str) -> dict:
    out = StringIO()
    call_command("ask", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_ask_prints_the_answer_citations_abstention_and_timings(kb_tenant, fake_llm):
    fake_llm.reply_text = ANSWER
    result = _ask("Is roaming in the European Union free?", "--tenant", kb_tenant.slug)
    assert result["status"] == "complete"
    assert result["answer"] == ANSWER
    assert result["abstained"] is False
    assert [c["n"] for c in result["citations"]] == [1]
    assert result["citations"][0]["chunk_id"] == result["retrieval"]["passages"][0]["chunk_id"]
    assert result["timings"]["time_to_first_token_ms"] > 0
    assert result["timings"]["total_ms"] >= result["timings"]["time_to_first_token_ms"]
    assert result["usage"]["completion_tokens"] == len(ANSWER.split())
    conversation = Conversation.objects.get(id=result["conversation_id"])
    assert (conversation.channel, conversation.contact) == ("cli", None)


def test_ask_continues_a_conversation_as_a_verified_customer(kb_tenant, fake_llm):
    fake_llm.reply_text = ANSWER
    accounts.contact_upsert(tenant=kb_tenant, external_id="cust-9", name="Aiko")
    first = _ask("Is roaming in the European Union free?", "--tenant", kb_tenant.slug, "--customer", "cust-9")
    second = _ask(
        "And outside the EU?",
        "--tenant",
        kb_tenant.slug,
        "--customer",
        "cust-9",
        "--conversation",
        first["conversation_id"],
    )
    assert second["conversation_id"] == first["conversation_id"]
    assert Message.objects.filter(conversation_id=first["conversation_id"]).count() == 4
    history = [m["content"] for m in fake_llm.chat_requests[-1]["messages"]]
    assert any("Is roaming in the European Union free?" in m for m in history[1:-1])  # memory carried


def test_ask_abstains_when_the_policies_are_silent(kb_tenant, fake_llm):
    result = _ask("Can I bring my parrot to the opera?", "--tenant", kb_tenant.slug)
    assert (result["abstained"], result["offer_handoff"], result["citations"]) == (True, True, [])
    assert fake_llm.chat_requests == []


def test_ask_refuses_unknown_tenants_customers_and_foreign_conversations(kb_tenant, make_tenant, fake_llm):
    with pytest.raises(CommandError, match="No company"):
        _ask("hi", "--tenant", "nope")
    with pytest.raises(CommandError, match="No customer"):
        _ask("hi", "--tenant", kb_tenant.slug, "--customer", "ghost")
    other = make_tenant()
    foreign = Conversation.objects.create(tenant=other)
    with pytest.raises(CommandError, match="No conversation"):
        _ask("hi", "--tenant", kb_tenant.slug, "--conversation", str(foreign.id))
    assert Message.objects.count() == 0


def test_ask_exits_non_zero_with_the_error_code_when_the_llm_is_down(kb_tenant, fake_llm, capsys):
    fake_llm.behaviour = "error_500"
    out = StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("ask", "Is EU roaming free?", "--tenant", kb_tenant.slug, "--json", stdout=out)
    assert exit_info.value.code == 1
    result = json.loads(out.getvalue())
    assert (result["status"], result["error_code"], result["offer_handoff"]) == (
        "failed",
        "llm_unavailable",
        True,
    )


def test_ask_reports_the_tool_runs_of_the_answer(kb_tenant, fake_llm):
    from tests.conftest import celery_worker_in_process
    from tests.tools.conftest import tools_enable

    tools_enable(kb_tenant)
    accounts.contact_upsert(tenant=kb_tenant, external_id="cust-1002", name="Tom")
    fake_llm.tool_caller = lambda body: [("bill_explain", "{}")]
    with celery_worker_in_process():
        result = _ask("Why is my bill higher?", "--tenant", kb_tenant.slug, "--customer", "cust-1002")
    [run] = result["tool_runs"]
    assert (run["tool"], run["status"], run["arguments"], run["approval"]) == (
        "bill_explain",
        "done",
        {},
        "none",
    )
    assert run["summary"].startswith(
        "Your latest bill NB-202610-1002 covers 2026-10-01 to 2026-10-31: 38.24 EUR"
    )
    assert result["answer"].startswith(run["summary"])
    assert result["timings"]["tool_decision_ms"] > 0
    assert result["timings"]["tools_ms"] >= run["duration_ms"]
