"""The tool registry: what each tool is, offered to the model as an OpenAI function spec.

A tool declares its name, a description for the model, pydantic input and output schemas, a timeout,
whether it reads or changes something, the least approval a change needs, and the sentence the customer
sees while it runs. Built-in tools register in apps.tools.builtin; a higher app (handoff) may register its
own from its AppConfig.ready().
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
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

    @property
    def changes_data(self) -> bool:
        return self.effect == "change"

    def function_spec(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": _parameters_schema(self.input_model),
            },
        }


def _parameters_schema(model: type[ToolInput]) -> dict[str, Any]:
    schema = copy.deepcopy(model.model_json_schema())
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    schema.setdefault("properties", {})
    return schema


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
