"""Where higher apps plug into conversations (STYLE: lower apps expose a registry, the higher app fills it
in its AppConfig.ready()). The handoff app registers here; conversations never imports it.

- ownership listeners: every ownership transition, inside its transaction (the queue entry is created or
  closed atomically with the change);
- reply-cancel listeners: after commit, the conversation whose reply must stop now (this process);
- email listeners: the customer left an email to be answered at, inside the transaction;
- rule checks: company rules (topics, customer tiers) that send a turn to a person before it is answered;
- session limits contributors: what a company offers the widget beyond typing (voice), added to the
  `limits` of every widget session (the voice app registers one);
- message-stored listeners: a customer's message, after its transaction commits (the memory app
  remembers what the customer agreed to have remembered);
- prompt memory providers: what the customer told us in earlier sessions, for the answer's prompt;
- reply-finished listeners: an assistant reply, stored and committed, after its turn (handoff included);
  not while rehearsing (apps.core.rehearsal). The releases app evaluates a running canary with it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from apps.accounts.models import Tenant
    from apps.conversations.models import Conversation, Message
    from apps.conversations.ownership import HandoffTrigger, Transition
    from apps.guardrails.pii import RedactedText

OwnershipListener = Callable[["Transition"], None]
CancelListener = Callable[[uuid.UUID], None]
EmailListener = Callable[["Conversation", str], None]
# (tenant id, the contact's tier or "", the turn's redacted text) -> a trigger, or None.
RuleCheck = Callable[[uuid.UUID, str, str], "HandoffTrigger | None"]
# (tenant) -> entries merged into the widget session's `limits`, e.g. {"voice": {...}}.
SessionLimitsContributor = Callable[["Tenant"], dict[str, Any]]
MessageStoredListener = Callable[["Message"], Any]
# (tenant id, conversation id) -> redacted statements of the customer from earlier sessions, oldest first.
PromptMemoryProvider = Callable[[uuid.UUID, uuid.UUID], "list[RedactedText]"]
ReplyFinishedListener = Callable[["Message"], Any]

_registry: dict[str, list[Any]] = {
    "ownership": [],
    "cancel": [],
    "email": [],
    "rules": [],
    "limits": [],
    "stored": [],
    "memory": [],
    "finished": [],
}


def _add(kind: str, fn: Any) -> None:
    if fn not in _registry[kind]:
        _registry[kind].append(fn)


def ownership_listener_add(fn: OwnershipListener) -> None:
    _add("ownership", fn)


def reply_cancel_listener_add(fn: CancelListener) -> None:
    _add("cancel", fn)


def email_listener_add(fn: EmailListener) -> None:
    _add("email", fn)


def rule_check_add(fn: RuleCheck) -> None:
    _add("rules", fn)


def session_limits_contributor_add(fn: SessionLimitsContributor) -> None:
    _add("limits", fn)


def message_stored_listener_add(fn: MessageStoredListener) -> None:
    _add("stored", fn)


def prompt_memory_provider_add(fn: PromptMemoryProvider) -> None:
    _add("memory", fn)


def reply_finished_listener_add(fn: ReplyFinishedListener) -> None:
    _add("finished", fn)


def ownership_listeners() -> list[OwnershipListener]:
    return list(_registry["ownership"])


def cancel_listeners() -> list[CancelListener]:
    return list(_registry["cancel"])


def email_listeners() -> list[EmailListener]:
    return list(_registry["email"])


def rule_checks() -> list[RuleCheck]:
    return list(_registry["rules"])


def session_limits_contributors() -> list[SessionLimitsContributor]:
    return list(_registry["limits"])


def message_stored_listeners() -> list[MessageStoredListener]:
    return list(_registry["stored"])


def prompt_memory_providers() -> list[PromptMemoryProvider]:
    return list(_registry["memory"])


def reply_finished_listeners() -> list[ReplyFinishedListener]:
    return list(_registry["finished"])
