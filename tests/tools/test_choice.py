"""Choosing a tool by embeddings and taking its arguments from the customer's words (apps/tools/choice.py),
with the real in-process embedding model and a scripted model server for what words cannot hold.

The phrasings here are held out: none is one of the tools' example requests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async

from apps.accounts.models import Tenant
from apps.conversations.toolcalls import tools_offered
from apps.guardrails.pii import RedactedText
from apps.llm.breaker import reset_breakers
from apps.llm.embeddings import embedder
from apps.tools import builtin, choice
from apps.tools.choice import NO_TOOL_EXAMPLES, ToolChoice, tools_choose, tools_choose_explained
from apps.tools.registry import KnownValue, tool_specs
from apps.tools.services import tool_configure
from tests.conftest import TenantStaff
from tests.fakes.openai_server import FakeOpenAI
from tests.tools.conftest import tools_enable

pytestmark = pytest.mark.anyio

DEMO_PLANS = {
    "plan_code": [
        KnownValue("plus-20", ("Plus 20 GB",)),
        KnownValue("essential-5", ("Essential 5 GB",)),
        KnownValue("unlimited-max", ("Unlimited Max",)),
        KnownValue("talk-only", ("Talk Only",)),
    ]
}
ASK_ORDER = "your order number (it looks like NM-123456)"


@pytest.fixture
def model(settings: Any) -> Iterator[FakeOpenAI]:
    """The decision server, scripted; a test that expects no model call asserts it got none."""
    with FakeOpenAI(models=["fake-model"]) as fake:
        settings.LLM_TOOLS_BASE_URL = fake.base_url
        settings.LLM_MODEL = "fake-model"
        settings.LLM_FIRST_TOKEN_TIMEOUT_SECONDS = 2.0
        reset_breakers()
        yield fake
        reset_breakers()


def vector(text: str) -> list[float]:
    [embedded] = embedder().embed([text])
    return embedded


async def choose(text: str, *, specs: Any = None, history: str = "", **kwargs: Any) -> ToolChoice:
    async def known(spec: Any) -> dict[str, list[KnownValue]]:
        return DEMO_PLANS

    return await tools_choose_explained(
        question=RedactedText.trusted(text),
        vector=vector(text),
        specs=tool_specs() if specs is None else specs,
        company="Nimbus Telecom",
        history_text=history,
        known_values=known,
        **kwargs,
    )


def calls(result: ToolChoice) -> list[tuple[str, dict[str, Any]]]:
    return [(c.name, json.loads(c.arguments)) for c in result.decision.calls]


def every_example() -> set[str]:
    return {e.casefold() for spec in tool_specs() for e in spec.examples} | {
        e.casefold() for e in NO_TOOL_EXAMPLES
    }


BILL_REQUESTS = [
    "Why is my bill so high?",
    "How come my invoice went up so much?",
    "What are these charges on my bill this month?",
    "I think I was overcharged on my last bill",
]
POLICY_QUESTIONS = [
    "How long do I have to return a phone?",
    "Is roaming in the EU free?",
    "What is the late payment fee?",
    "Can I get a refund if I return my phone?",
    "Hello!",
    "Write me a poem about the sea",
]


def test_the_phrasings_here_are_held_out() -> None:
    mine = {t.casefold() for t in [*BILL_REQUESTS, *POLICY_QUESTIONS]}
    assert not mine & every_example()


@pytest.mark.parametrize("text", BILL_REQUESTS)
async def test_the_bill_tool_is_chosen_for_a_bill_question(text: str, model: FakeOpenAI) -> None:
    result = await choose(text)
    assert calls(result) == [("bill_explain", {})]
    assert (result.tool, result.arguments_from, result.decision.ask_for) == ("bill_explain", "words", None)
    assert model.chat_requests == []  # chosen and filled without the model


@pytest.mark.parametrize("text", POLICY_QUESTIONS)
async def test_a_policy_question_or_small_talk_chooses_no_tool(text: str, model: FakeOpenAI) -> None:
    result = await choose(text)
    assert (result.decision.calls, result.tool, result.decision.ask_for) == ([], None, None)
    assert model.chat_requests == []


async def test_the_order_number_comes_from_the_words(model: FakeOpenAI) -> None:
    result = await choose("Could you check where order NM-100234 has got to?")
    assert calls(result) == [("order_lookup", {"order_number": "NM-100234"})]
    assert model.chat_requests == []


async def test_without_an_order_number_the_customer_is_asked_for_it_and_nothing_is_invented(
    model: FakeOpenAI,
) -> None:
    model.tool_caller = lambda body: [("order_lookup", '{"order_number": "NM-999999"}')]
    result = await choose("Where has my order got to?")
    assert (result.tool, result.decision.calls, result.decision.ask_for) == ("order_lookup", [], ASK_ORDER)
    assert model.chat_requests == []  # no model can find a number the customer did not give


async def test_a_reply_to_what_the_assistant_asked_for_is_read_as_the_answer(model: FakeOpenAI) -> None:
    asked = "I want to change my plan\nCould you tell me the plan you would like to move to?"
    result = await choose("Unlimited Max", history=asked)
    assert calls(result) == [("plan_change", {"plan_code": "unlimited-max"})]
    assert result.reason == "gives what was asked for"
    # Said out of the blue, a plan's name asks for no change.
    assert calls(await choose("Unlimited Max")) == [("plans_compare", {})]

    asked = f"Where has my order got to?\nCould you tell me {ASK_ORDER}?"
    assert calls(await choose("NM-100198", history=asked)) == [
        ("order_lookup", {"order_number": "NM-100198"})
    ]


async def test_between_two_order_numbers_the_model_picks_one_the_customer_wrote(model: FakeOpenAI) -> None:
    text = "Which of NM-100234 and NM-100198 is the phone, and where is it?"
    model.tool_caller = lambda body: [("order_lookup", '{"order_number": "NM-100198"}')]
    assert calls(await choose(text)) == [("order_lookup", {"order_number": "NM-100198"})]
    [request] = model.chat_requests
    assert request["tool_choice"] == {"type": "function", "function": {"name": "order_lookup"}}

    model.tool_caller = lambda body: [("order_lookup", '{"order_number": "NM-555555"}')]
    invented = await choose(text)
    assert (invented.decision.calls, invented.decision.ask_for) == ([], ASK_ORDER)


async def test_a_plan_change_takes_the_plan_the_customer_named(model: FakeOpenAI) -> None:
    assert calls(await choose("Please move me to the unlimited plan")) == [
        ("plan_change", {"plan_code": "unlimited-max"})
    ]
    assert calls(await choose("Switch me from Plus 20 GB to Talk Only")) == [
        ("plan_change", {"plan_code": "talk-only"})
    ]
    assert model.chat_requests == []


async def test_a_plan_change_without_a_plan_asks_which_and_never_takes_the_model_s_guess(
    model: FakeOpenAI,
) -> None:
    model.tool_caller = lambda body: [("plan_change", '{"plan_code": "unlimited-max"}')]
    result = await choose("I want to change my plan")
    assert (result.tool, result.decision.calls) == ("plan_change", [])
    assert result.decision.ask_for == "the plan you would like to move to"
    assert model.chat_requests == []


async def test_a_question_about_plans_that_asks_for_no_change_compares_them(model: FakeOpenAI) -> None:
    # Names a plan, and is no clear request to change: the read, never a proposal.
    assert calls(await choose("How much does Unlimited Max cost next to what I have?")) == [
        ("plans_compare", {})
    ]


async def test_only_what_the_words_cannot_hold_is_asked_of_the_model_with_the_tool_forced(
    model: FakeOpenAI,
) -> None:
    model.tool_caller = lambda body: [
        ("ticket_create", '{"subject": "No data", "description": "Invented by the model"}')
    ]
    text = "Mobile data has not worked on my phone since Tuesday, please get it looked at"
    offered = [builtin.ORDER_LOOKUP, builtin.TICKET_CREATE]
    result = await choose(text, specs=offered)
    # The subject is the model's; the description is the customer's own words.
    assert calls(result) == [("ticket_create", {"subject": "No data", "description": text})]
    assert result.arguments_from == "model"
    [request] = model.chat_requests
    assert request["tool_choice"] == {"type": "function", "function": {"name": "ticket_create"}}
    assert [t["function"]["name"] for t in request["tools"]] == ["order_lookup", "ticket_create"]
    assert result.decision.prompt_tokens > 0


@pytest.mark.parametrize(
    ("behaviour", "fill"),
    [
        ("error_500", None),  # the decision server is down
        ("ok", ("plan_change", '{"plan_code": "unlimited-max"}')),  # another tool than the one forced
        # What SmolLM2-135M wrote for a subject: nothing of the customer's.
        ("ok", ("ticket_create", '{"subject": "I am unable to assist you with your order."}')),
    ],
)
async def test_a_subject_the_model_fails_to_write_is_the_customer_s_first_sentence(
    model: FakeOpenAI, behaviour: str, fill: tuple[str, str] | None
) -> None:
    text = "My phone shows no signal at all. Please report it"
    model.behaviour = behaviour
    model.tool_caller = (lambda body: [fill]) if fill else None
    result = await choose(text)
    assert calls(result) == [
        ("ticket_create", {"subject": "My phone shows no signal at all.", "description": text})
    ]
    assert result.decision.ask_for is None
    assert bool(result.decision.error) == (behaviour != "ok")


async def test_a_malformed_or_overreaching_fill_is_passed_on_for_the_usual_refusal(model: FakeOpenAI) -> None:
    text = "My phone shows no signal at all, please report it"
    model.tool_caller = lambda body: [("ticket_create", '{"subject": No signal}')]
    [malformed] = (await choose(text)).decision.calls
    assert (malformed.name, malformed.arguments) == ("ticket_create", '{"subject": No signal}')

    model.tool_caller = lambda body: [("ticket_create", '{"subject": "No signal", "customer": "cust-1002"}')]
    [extra] = (await choose(text)).decision.calls
    # tool_call_propose refuses it: an argument the schema does not have is an error.
    assert json.loads(extra.arguments) == {
        "subject": "No signal",
        "customer": "cust-1002",
        "description": text,
    }


async def test_a_tool_this_customer_is_not_offered_is_never_swapped_for_another(model: FakeOpenAI) -> None:
    result = await choose("Where is my order NM-100234?", specs=[builtin.TICKET_CREATE])
    assert (result.decision.calls, result.tool, result.reason) == (
        [],
        None,
        "order_lookup is not offered here",
    )


async def test_tool_texts_are_embedded_once_per_process_and_again_when_they_change(
    model: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedded: list[str] = []
    real = embedder()

    class Counting:
        model = real.model

        def embed(self, texts: list[str]) -> list[list[float]]:
            embedded.extend(texts)
            return real.embed(texts)

    monkeypatch.setattr(choice, "embedder", lambda: Counting())
    choice._vectors.clear()
    await choose("Why is my bill so high?")
    texts = [t for spec in tool_specs() for t in choice.tool_texts(spec)] + list(NO_TOOL_EXAMPLES)
    assert sorted(embedded) == sorted(set(texts))

    embedded.clear()
    await choose("Where is my order NM-100234?")
    assert embedded == []

    await choose("Wo bleibt meine Bestellung?", extra_examples={"order_lookup": ["Wo ist mein Paket?"]})
    assert embedded == ["Wo ist mein Paket?"]


# ---- through the database: the company's tools, examples and business system ---------------------------


@pytest.mark.django_db(transaction=True)
async def test_an_unverified_customer_is_offered_no_tool_that_needs_an_identity(
    tools_a: TenantStaff, model: FakeOpenAI
) -> None:
    tenant = tools_a.tenant
    assert await tools_offered(tenant=tenant, customer=None) == []
    text = "Where is my order NM-100234?"
    anonymous = await tools_choose(
        tenant=tenant, question=RedactedText.trusted(text), vector=vector(text), specs=[], customer=None
    )
    assert (anonymous.calls, anonymous.ask_for) == ([], None)
    offered = await tools_offered(tenant=tenant, customer="cust-1001")
    verified = await tools_choose(
        tenant=tenant,
        question=RedactedText.trusted(text),
        vector=vector(text),
        specs=offered,
        customer="cust-1001",
    )
    assert [(c.name, c.arguments) for c in verified.calls] == [
        ("order_lookup", '{"order_number": "NM-100234"}')
    ]


@pytest.mark.django_db(transaction=True)
async def test_plan_names_are_read_from_the_company_s_business_system(
    tools_a: TenantStaff, model: FakeOpenAI
) -> None:
    tenant = tools_a.tenant
    text = "Please put me on the Essential plan"
    offered = await tools_offered(tenant=tenant, customer="cust-1001")
    decision = await tools_choose(
        tenant=tenant,
        question=RedactedText.trusted(text),
        vector=vector(text),
        specs=offered,
        customer="cust-1001",
    )
    assert [(c.name, json.loads(c.arguments)) for c in decision.calls] == [
        ("plan_change", {"plan_code": "essential-5"})
    ]
    assert model.chat_requests == []


@pytest.mark.django_db(transaction=True)
async def test_a_company_s_own_examples_choose_for_that_company_only(
    tools_a: TenantStaff, make_tenant: Any, model: FakeOpenAI
) -> None:
    other: Tenant = await database_sync_to_async(make_tenant)()
    await database_sync_to_async(tools_enable)(other)
    await database_sync_to_async(tool_configure)(
        tenant=tools_a.tenant,
        name="order_lookup",
        enabled=True,
        examples=["Wo ist mein Paket?", "Wann kommt meine Lieferung an?"],
    )
    text = "Wo bleibt meine Bestellung?"

    async def decide(tenant: Tenant) -> Any:
        offered = await tools_offered(tenant=tenant, customer="cust-1001")
        return await tools_choose(
            tenant=tenant,
            question=RedactedText.trusted(text),
            vector=vector(text),
            specs=offered,
            customer="cust-1001",
        )

    mine = await decide(tools_a.tenant)
    assert (mine.calls, mine.ask_for) == ([], ASK_ORDER)  # chosen; the number is still to be given
    theirs = await decide(other)
    assert (theirs.calls, theirs.ask_for) == ([], None)  # the other company's examples are not theirs
