"""The tool registry: what each tool is, offered to the model as an OpenAI function spec.

A tool declares its name, a description for the model, pydantic input and output schemas, a timeout,
whether it reads or changes something, the least approval a change needs, and the sentence the customer
sees while it runs. Built-in tools register in apps.tools.builtin; a higher app (handoff) may register its
own from its AppConfig.ready().
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from apps.tools.adapters import BusinessAdapter
from apps.tools.schemas import ToolInput, ToolOutput

Effect = Literal["read", "change"]


@dataclass(frozen=True)
class ToolContext:
    """What a running tool gets. `customer` is the conversation's verified identity."""

    tenant_id: Any
    customer: str
    idempotency_key: str
    adapter: BusinessAdapter


@dataclass(frozen=True)
class KnownValue:
    """A value an argument may take, with the words customers use for it: a plan's code and its name."""

    value: str
    names: tuple[str, ...] = ()


# An argument's known values, read through the company's business system for one customer:
# {"plan_code": [KnownValue("plus-20", ("Plus 20 GB",)), ...]}.
KnownValues = Callable[[BusinessAdapter, str], Mapping[str, list[KnownValue]]]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    input_model: type[ToolInput]
    output_model: type[ToolOutput]
    effect: Effect
    timeout_seconds: float
    progress: str  # shown to the customer while it runs: "Checking your order…"
    run: Callable[[ToolContext, Any], ToolOutput]
    summarize: Callable[[Any], str]  # the customer-facing facts of a result, from the output model
    needs_identity: bool = True
    free_text_fields: tuple[str, ...] = ()  # redacted before they are stored or sent anywhere
    label: str = ""  # for people: "Look up an order"
    # What a proposal asks for, from its validated arguments: "change your plan to plus-20".
    describe: Callable[[dict[str, Any]], str] | None = None
    # Word stems a request for this tool nearly always contains ("order", "deliver"...). Used only to
    # drop a read the model called while the policies already answer a question that names none of
    # them (small models call a tool for almost everything), and by the chooser (apps/tools/choice.py)
    # as a second signal beside the embeddings.
    topics: tuple[str, ...] = ()
    # Requests for this tool in customers' words, 8-15 varied phrasings: the chooser matches a request
    # against them (and the description) with embeddings. A company may add its own (TenantTool.examples).
    examples: tuple[str, ...] = ()
    # Arguments that are the customer's own words (a ticket's description): filled with the request.
    from_request: tuple[str, ...] = ()
    # What the assistant asks for when a required argument is not in the customer's words, per argument:
    # {"order_number": "your order number (it looks like NM-123456)"}.
    ask_for: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)
    # The values an argument may take for this customer (plan codes and names), matched in their words.
    known_values: KnownValues | None = field(default=None, hash=False, compare=False)

    @property
    def changes_data(self) -> bool:
        return self.effect == "change"

    def mentioned_in(self, text: str) -> bool:
        lowered = text.lower().replace("\u2019", "'")  # a typographic apostrophe is a plain one
        return not self.topics or any(topic in lowered for topic in self.topics)

    def function_spec(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": _parameters_schema(self.input_model),
            },
        }


# llama.cpp turns the offered schema into a grammar, and a long string limit (`maxLength: 2000`) becomes a
# rule nested 2000 deep that it refuses to parse (its server then fails the request). Such limits stay out
# of what the model is offered; short ones and patterns help a small model and stay. The input model
# still enforces every limit before anything runs.
_NOT_OFFERED = frozenset({"title"})
_LONGEST_OFFERED_LENGTH = 64


def _parameters_schema(model: type[ToolInput]) -> dict[str, Any]:
    schema = _without(copy.deepcopy(model.model_json_schema()))
    schema.setdefault("properties", {})
    return schema


def _without(node: Any) -> Any:
    if isinstance(node, list):
        return [_without(item) for item in node]
    if not isinstance(node, dict):
        return node
    long_text = int(node.get("maxLength", 0)) > _LONGEST_OFFERED_LENGTH
    cleaned: dict[str, Any] = {}
    for key, value in node.items():
        if key in _NOT_OFFERED or (long_text and key in ("maxLength", "minLength")):
            continue
        if key == "properties" and isinstance(value, dict):
            # Property names are data, not keywords: a field called `title` stays.
            cleaned[key] = {name: _without(schema) for name, schema in value.items()}
        else:
            cleaned[key] = _without(value)
    return cleaned


_registry: dict[str, ToolSpec] = {}


def tool_register(spec: ToolSpec) -> ToolSpec:
    if spec.name in _registry and _registry[spec.name] is not spec:
        raise ValueError(f"a tool named {spec.name!r} is already registered")
    _registry[spec.name] = spec
    return spec


def tool_spec(name: str) -> ToolSpec | None:
    return _registry.get(name)


def tool_specs() -> list[ToolSpec]:
    return sorted(_registry.values(), key=lambda spec: spec.name)
