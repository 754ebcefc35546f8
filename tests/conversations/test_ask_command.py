"""`manage.py ask`: the assistant's pipeline from the command line, against the scripted LLM."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.accounts import services as accounts
from apps.conversations.answering.pipeline import UNAVAILABLE_NOTE
from apps.conversations.models import Conversation, Message
from tests.conversations.conftest import (
    SUPPORTED_EU,
    WRONG_NUMBER,
    answers_configure,
    compose_requests,
    model_composes,
    quote_of,
)
from tests.fakes.openai_server import split_tokens

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "Is roaming in the European Union free?"
COMPOSED = f"{SUPPORTED_EU} {WRONG_NUMBER}"  # one sentence the policy supports, one it does not


def _ask(*args: str) -> dict:
    out = StringIO()
    call_command("ask", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def _ask_exit(*args: str) -> tuple[int | str | None, dict]:
    """The command's exit code (None: it returned normally) and its JSON."""
    out = StringIO()
    try:
        call_command("ask", *args, "--json", stdout=out)
    except SystemExit as exc:
        return exc.code, json.loads(out.getvalue())
    return None, json.loads(out.getvalue())


def test_ask_prints_the_quoted_answer_citations_abstention_and_timings(kb_tenant, fake_llm):
    answers_configure(kb_tenant, style="quote")
    result = _ask(QUESTION, "--tenant", kb_tenant.slug)
    assert result["status"] == "complete"
    evidence = result["retrieval"]["evidence"]
    assert result["answer"] == quote_of(evidence)
    assert SUPPORTED_EU[:-1] not in result["answer"]  # nothing but the policy's own words
    assert (result["style"], result["composed"], result["abstained"]) == ("quote", None, False)
    assert [c["n"] for c in result["citations"]] == list(dict.fromkeys(e["n"] for e in evidence))
    assert [c["chunk_id"] for c in result["citations"]] == list(
        dict.fromkeys(e["chunk_id"] for e in evidence)
    )
    assert {c["chunk_id"] for c in result["citations"]} <= {
        p["chunk_id"] for p in result["retrieval"]["passages"]
    }
    assert all(c["quoted"] is True and c["inferred"] is False for c in result["citations"])
    assert result["timings"]["time_to_first_token_ms"] > 0
    assert result["timings"]["total_ms"] >= result["timings"]["time_to_first_token_ms"]
    assert (result["model"], result["usage"]["completion_tokens"]) == (None, 0)
    assert fake_llm.chat_requests == []  # quote never asks the model
    conversation = Conversation.objects.get(id=result["conversation_id"])
    assert (conversation.channel, conversation.contact) == ("cli", None)


def test_ask_in_compose_prints_the_checked_sentences_and_the_dropped_ones(kb_tenant, fake_llm):
    answers_configure(kb_tenant, style="compose")
    model_composes(fake_llm, COMPOSED)
    code, result = _ask_exit(QUESTION, "--tenant", kb_tenant.slug)
    assert code is None
    assert result["status"] == "complete"
    assert result["answer"] == f"{quote_of(result['retrieval']['evidence'])}\n\n{SUPPORTED_EU}"
    assert result["style"] == "compose"
    assert result["composed"] == {
        "shown": [SUPPORTED_EU],
        "dropped": [{"sentence": WRONG_NUMBER, "reasons": ["number:50 GB"]}],
        "fell_back_to_quote": False,
        "error": None,
    }
    assert [c["n"] for c in result["citations"]] == list(
        dict.fromkeys(e["n"] for e in result["retrieval"]["evidence"])
    )
    assert result["model"] == "fake-model"
    assert result["usage"]["completion_tokens"] == len(split_tokens(COMPOSED))
    assert result["usage"]["prompt_tokens"] > 0
    assert result["timings"]["llm_time_to_first_token_ms"] > 0
    stored = Message.objects.get(id=result["message_id"])
    assert stored.text == result["answer"]
    assert WRONG_NUMBER not in stored.text


def test_ask_continues_a_conversation_as_a_verified_customer(kb_tenant, fake_llm):
    accounts.contact_upsert(tenant=kb_tenant, external_id="cust-9", name="Aiko")
    first = _ask(QUESTION, "--tenant", kb_tenant.slug, "--customer", "cust-9")
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
    conversation = Conversation.objects.get(id=first["conversation_id"])
    assert conversation.contact is not None
    assert conversation.contact.external_id == "cust-9"
    # The follow-up is searched with the earlier question's subject (memory carried)...
    followup = second["retrieval"]["followup"]["carried_over"]
    assert followup.startswith(QUESTION)
    assert second["retrieval"]["query"] == followup
    # ...and answered from the section on travel outside the EU, first.
    assert second["citations"][0]["section"] == "Roaming > Roaming outside the European Union"
    assert "World Traveller pass costs 8 euros per day" in second["answer"]


def test_ask_abstains_when_the_policies_are_silent(kb_tenant, fake_llm):
    answers_configure(kb_tenant, style="compose")
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


def test_ask_exits_zero_with_the_error_code_when_the_llm_is_down_but_the_quote_answered(kb_tenant, fake_llm):
    answers_configure(kb_tenant, style="compose")
    fake_llm.behaviour = "error_500"
    code, result = _ask_exit("Is EU roaming free?", "--tenant", kb_tenant.slug)
    assert code is None  # complete: the quoted evidence answered
    assert (result["status"], result["error_code"], result["offer_handoff"]) == (
        "complete",
        "llm_unavailable",
        True,
    )
    assert result["answer"] == f"{quote_of(result['retrieval']['evidence'])}\n\n{UNAVAILABLE_NOTE}"
    assert result["composed"]["error"] == "unavailable"


def test_ask_exits_non_zero_when_the_reply_is_interrupted(kb_tenant, fake_llm):
    answers_configure(kb_tenant, style="compose")
    model_composes(fake_llm, f"{SUPPORTED_EU} {SUPPORTED_EU}")
    fake_llm.behaviour = "cut"
    fake_llm.cut_after = len(split_tokens(SUPPORTED_EU)) + 2  # after the first sentence was shown
    code, result = _ask_exit(QUESTION, "--tenant", kb_tenant.slug)
    assert code == 1
    assert (result["status"], result["error_code"]) == ("interrupted", "interrupted")
    assert result["answer"] == f"{quote_of(result['retrieval']['evidence'])}\n\n{SUPPORTED_EU}"
    assert len(compose_requests(fake_llm)) == 1


def test_ask_exits_non_zero_with_the_error_code_when_the_reply_failed(kb_tenant, fake_llm, settings):
    settings.EMBEDDINGS_BASE_URL = "http://127.0.0.1:9/v1"  # retrieval down: no grounded answer at all
    from apps.llm import embeddings

    embeddings._embedder.cache_clear()
    try:
        code, result = _ask_exit("Is EU roaming free?", "--tenant", kb_tenant.slug)
    finally:
        embeddings._embedder.cache_clear()
    assert code == 1
    assert (result["status"], result["error_code"], result["offer_handoff"], result["answer"]) == (
        "failed",
        "temporarily_unavailable",
        True,
        "",
    )


def test_ask_streams_the_answer_as_it_is_written_without_json(kb_tenant, fake_llm, capsys):
    answers_configure(kb_tenant, style="compose")
    model_composes(fake_llm, COMPOSED)
    out = StringIO()
    call_command("ask", QUESTION, "--tenant", kb_tenant.slug, stdout=out)
    stored = Message.objects.get(role="assistant")
    assert capsys.readouterr().out == stored.text  # streamed piece by piece to the terminal
    printed = out.getvalue()
    assert "[complete, compose]" in printed
    assert "1 model sentence(s) dropped by the support check" in printed
    assert WRONG_NUMBER not in printed
    assert "(as stored)" not in printed


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
