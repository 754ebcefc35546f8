"""Where higher apps plug into the company settings page (STYLE: a lower app exposes a registry, the higher
app fills it in its AppConfig.ready()). Accounts sits below guardrails and llm, so it never imports them:

- the guardrails app registers the sensitive topics a company may hand to a person (their keys are what
  Tenant.handoff_topics stores);
- the llm app registers what the "auto" answer style resolves to for the configured model, and why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class HandoffTopicInfo:
    key: str
    label: str
    description: str


# () -> ("quote" | "compose", the reason in one sentence)
AutoStyleResolver = Callable[[], tuple[str, str]]

_topics: dict[str, HandoffTopicInfo] = {}
_auto_style: list[AutoStyleResolver] = []


def handoff_topics_register(topics: Iterable[HandoffTopicInfo]) -> None:
    for topic in topics:
        _topics[topic.key] = topic


def handoff_topics() -> list[HandoffTopicInfo]:
    """Every topic a company may choose, in the order they are checked."""
    return list(_topics.values())


def auto_style_resolver_set(fn: AutoStyleResolver) -> None:
    _auto_style[:] = [fn]


def auto_style_resolve() -> tuple[str, str] | None:
    """What "auto" means right now and why, or None when no app has said."""
    return _auto_style[0]() if _auto_style else None
