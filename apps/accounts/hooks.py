"""Where higher apps plug into the company settings page (STYLE: a lower app exposes a registry, the higher
app fills it in its AppConfig.ready()). Accounts sits below guardrails and llm, so it never imports them:

- the guardrails app registers the sensitive topics a company may hand to a person (their keys are what
  Tenant.handoff_topics stores);
- the llm app registers what the "auto" answer style resolves to for the configured model, and why;
- apps with settings of their own (voice) register a section of the page: a template, the context it
  needs, and the app's own view to post its form to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from apps.accounts.models import Tenant


@dataclass(frozen=True)
class HandoffTopicInfo:
    key: str
    label: str
    description: str


# () -> ("quote" | "compose", the reason in one sentence)
AutoStyleResolver = Callable[[], tuple[str, str]]


@dataclass(frozen=True)
class SettingsSection:
    """A section of the company settings page owned by a higher app. `context(tenant=...)` returns what
    `template` needs (it also gets `tenant` and `is_admin`); the template posts to the app's own view,
    which checks that the user is an admin of the company."""

    key: str
    template: str
    context: Callable[..., Mapping[str, Any]]


_topics: dict[str, HandoffTopicInfo] = {}
_auto_style: list[AutoStyleResolver] = []
_sections: dict[str, SettingsSection] = {}


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


def settings_section_register(section: SettingsSection) -> None:
    _sections[section.key] = section


def settings_sections(*, tenant: Tenant) -> list[dict[str, Any]]:
    """The registered sections, in the order they were registered, each with its context for `tenant`."""
    return [{"key": s.key, "template": s.template, **s.context(tenant=tenant)} for s in _sections.values()]
