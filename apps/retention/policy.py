"""What each retention period means, in the words the settings page and the errors use, and the checks a
period passes before it is saved (a zero or negative period is refused, never read as "delete at once")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from apps.core.errors import BadRequest
from apps.retention.models import MAX_DAYS, PERIOD_FIELDS


@dataclass(frozen=True)
class Period:
    field: str
    label: str  # the form's label
    noun: str  # what the error sentences say is kept
    help: str  # one or two sentences under the field


PERIODS: dict[str, Period] = {
    p.field: p
    for p in (
        Period(
            "conversations_days",
            "Closed conversations",
            "closed conversations",
            "A conversation that was resolved, or left with the assistant and not written in since, is "
            "deleted whole this many days after its last activity: messages, events, answer traces, "
            "handoffs with their case files, notes, tickets, emails, tool runs and voice recordings. "
            "Conversations waiting for a person or with one are never deleted.",
        ),
        Period(
            "messages_days",
            "Message words",
            "the words of messages",
            "In conversations that are kept (still open, or closed more recently than the period above), "
            "each message older than this has its words replaced by a note that they were removed; the "
            "conversation, its order and who wrote what stay.",
        ),
        Period(
            "audio_days",
            "Voice recordings",
            "voice recordings",
            "Recordings kept after transcription (see Voice messages) are deleted this long after they were "
            "made; the transcript stays with its message.",
        ),
        Period(
            "tool_runs_days",
            "Tool-run details",
            "tool-run details",
            "The arguments and results of finished tool runs (order numbers, bills, plans) are blanked this "
            "long after the run; which tool ran, when and how it ended stay.",
        ),
        Period(
            "case_files_days",
            "Case files",
            "case files",
            "The case file of a closed handoff (the summary agents read) is emptied this long after the "
            "handoff closed; the handoff itself stays for reports.",
        ),
        Period(
            "traces_days",
            "Answer traces",
            "answer traces",
            "What the assistant saw for each reply (the redacted prompt, the passages retrieved, the input "
            "checks) is deleted this long after the reply.",
        ),
        Period(
            "knowledge_gaps_days",
            "Knowledge gaps",
            "knowledge gaps",
            "Questions the assistant could not answer are deleted this long after they were asked, "
            "resolved or not.",
        ),
    )
}
assert tuple(PERIODS) == PERIOD_FIELDS


class RetentionPolicyInvalid(BadRequest):
    """One sentence per refused field; the message is all of them, and the payload names each field so a
    form can show its sentence next to it."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        self.fields = dict(fields)
        super().__init__(" ".join(self.fields.values()))

    def as_payload(self) -> dict[str, Any]:
        return {**super().as_payload(), "fields": self.fields}


def _whole_days(value: object) -> int | None:
    """The value as a whole number, or None when it is not one. Forms send text, the API sends JSON."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit() and text.count("-") <= 1:
            return int(text)
    return None


def periods_parse(values: Mapping[str, object]) -> dict[str, int | None]:
    """`values` (field → days, None or "" for forever) checked: the periods to save, or
    `RetentionPolicyInvalid` with a sentence for each field that is refused. Unknown fields are refused too:
    a misspelt name would otherwise change nothing without a word."""
    errors: dict[str, str] = {}
    parsed: dict[str, int | None] = {}
    unknown = sorted(set(values) - set(PERIODS))
    for name in unknown:
        errors[name] = f"{name!r} is not a retention period; the periods are {', '.join(PERIOD_FIELDS)}."
    for name, value in values.items():
        period = PERIODS.get(name)
        if period is None:
            continue
        if value is None or (isinstance(value, str) and not value.strip()):
            parsed[name] = None
            continue
        days = _whole_days(value)
        if days is None:
            errors[name] = (
                f"Enter the days to keep {period.noun} as a whole number, such as 90, or leave it empty to "
                "keep them forever."
            )
        elif days < 1:
            errors[name] = (
                f"Keep {period.noun} for at least 1 day (not {days}): a period of {days} would delete them "
                "as soon as they are written. Leave it empty to keep them forever."
            )
        elif days > MAX_DAYS:
            errors[name] = (
                f"Keep {period.noun} for at most {MAX_DAYS} days (ten years), not {days}; leave it empty to "
                "keep them forever."
            )
        else:
            parsed[name] = days
    if errors:
        raise RetentionPolicyInvalid(errors)
    return parsed
