"""Reads of the golden pages and API (apps/releases/golden_views.py, golden_apis.py): tenant-checked
fetches, the run history, each question's last result, and the prefilled form an editor opens from a
reply in the console or from a knowledge gap. The runner's own reads are in selectors.py."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Max, QuerySet

from apps.accounts.models import Tenant
from apps.conversations.models import Message
from apps.core.errors import NotFound
from apps.knowledge.models import Document
from apps.knowledge.selectors import access_gap, documents_for_tenant
from apps.releases.models import GoldenQuestion, GoldenResult, GoldenRun

HISTORY_RUNS = 50
# The runs the pass-rate chart draws: the knowledge as published. A gate's "as it would be" run answers
# from a change nobody has applied yet, so it is listed but not charted.
CHARTED_KINDS = (GoldenRun.Kind.MANUAL, GoldenRun.Kind.COMMAND, GoldenRun.Kind.GATE_BEFORE)
SUGGESTION_CHARS = 80

_MARKER = re.compile(r"\s*\[\d+\]")
_AMOUNT = re.compile(r"(?:[€$£]\s?)?\d+(?:[.,:]\d+)*(?:\s?(?:%|[A-Za-z€$£]+))?")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def _key(value: object) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound() from None


def access_golden_question(*, tenant: Tenant, question_id: uuid.UUID | str) -> GoldenQuestion:
    question = (
        GoldenQuestion.objects.for_tenant(tenant)
        .select_related("document")
        .filter(id=_key(question_id), active=True)
        .first()
    )
    if question is None:
        raise NotFound()
    return question


def access_golden_run(*, tenant: Tenant, run_id: uuid.UUID | str) -> GoldenRun:
    run = GoldenRun.objects.for_tenant(tenant).select_related("requested_by").filter(id=_key(run_id)).first()
    if run is None:
        raise NotFound()
    return run


def golden_questions_listed(*, tenant: Tenant) -> QuerySet[GoldenQuestion]:
    return GoldenQuestion.objects.for_tenant(tenant).filter(active=True).select_related("document")


def golden_runs_recent(*, tenant: Tenant, limit: int = HISTORY_RUNS) -> list[GoldenRun]:
    return list(GoldenRun.objects.for_tenant(tenant).select_related("requested_by")[:limit])


def golden_runs_charted(runs: list[GoldenRun]) -> list[GoldenRun]:
    """The finished runs of `runs` (newest first) that the chart draws, oldest first."""
    return [r for r in reversed(runs) if r.status == GoldenRun.Status.DONE and r.kind in CHARTED_KINDS]


def golden_run_results(*, run: GoldenRun) -> list[GoldenResult]:
    return list(run.results.order_by("ordinal"))


def golden_last_results(*, tenant: Tenant) -> dict[uuid.UUID, GoldenResult]:
    """Each question's result in the newest finished run that asked it."""
    results = (
        GoldenResult.objects.filter(
            run__tenant=tenant,
            run__status=GoldenRun.Status.DONE,
            run__kind__in=CHARTED_KINDS,
            question__isnull=False,
        )
        .select_related("run")
        .order_by("question_id", "-run__created_at")
        .distinct("question_id")
    )
    return {r.question_id: r for r in results if r.question_id is not None}


# --- the prefilled form -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prefill:
    """What the new-question form starts with, and what the editor judged (shown beside it)."""

    question: str = ""
    expect: list[str] = field(default_factory=list)
    document_id: str = ""
    must_abstain: bool = False
    source: str = GoldenQuestion.Source.MANUAL
    source_ref: uuid.UUID | None = None
    verdict: str = ""  # "right" | "wrong": the console button that opened the form
    answer: str = ""  # the reply the editor judged
    cited: list[str] = field(default_factory=list)
    nearest: list[dict[str, Any]] = field(default_factory=list)  # a gap's closest passages


def suggested_phrase(answer: str) -> str:
    """A short fact of a right answer to check for: its first amount ("14 days", "€12"), else its first
    sentence, cut to a few words. The editor sees it and can change it."""
    text = _MARKER.sub("", answer).strip()
    if not text:
        return ""
    body = text.split(":", 1)[1].strip() if ":" in text[:80] else text  # past a quoting lead-in
    amount = _AMOUNT.search(body)
    if amount:
        return amount.group(0).strip()
    sentence = _SENTENCE_END.split(body, maxsplit=1)[0].rstrip(".!? ")
    if len(sentence) <= SUGGESTION_CHARS:
        return sentence
    return sentence[:SUGGESTION_CHARS].rsplit(" ", 1)[0]


def _turn_question(message: Message) -> str:
    """The customer's words the reply answered: every customer message since the previous reply (or
    agent message) up to the reply's turn, as redacted (a golden question must not keep personal data)."""
    previous = (
        Message.objects.filter(
            conversation_id=message.conversation_id,
            role__in=[Message.Role.ASSISTANT, Message.Role.AGENT],
            turn__lt=message.turn,
        ).aggregate(turn=Max("turn"))["turn"]
        or 0
    )
    asked = Message.objects.filter(
        conversation_id=message.conversation_id,
        role=Message.Role.CUSTOMER,
        turn__gt=previous,
        turn__lte=message.turn,
    ).order_by("created_at")
    return " ".join(m.text_redacted.strip() for m in asked if m.text_redacted.strip())


def golden_prefill_from_message(*, tenant: Tenant, message_id: uuid.UUID | str, verdict: str) -> Prefill:
    """From an assistant reply of the company: its turn's question, the policy it cited and, when the
    editor said it was right, a phrase of it to expect (or, right to abstain, must-abstain)."""
    message = (
        Message.objects.filter(tenant=tenant, id=_key(message_id), role=Message.Role.ASSISTANT)
        .only("id", "conversation_id", "turn", "text", "citations", "abstained")
        .first()
    )
    if message is None:
        raise NotFound()
    citations = [c for c in message.citations or [] if isinstance(c, dict)]
    cited_ids = {str(c.get("document_id", "")) for c in citations}
    owned = {
        str(pk)
        for pk in documents_for_tenant(tenant=tenant)
        .filter(id__in=[c for c in cited_ids if _is_uuid(c)])
        .values_list("id", flat=True)
    }
    document_id = next((str(c["document_id"]) for c in citations if str(c.get("document_id")) in owned), "")
    right = verdict == "right"
    abstain = right and message.abstained and not citations
    return Prefill(
        question=_turn_question(message),
        expect=[suggested_phrase(message.text)] if right and not abstain and message.text else [],
        document_id="" if abstain else document_id,
        must_abstain=abstain,
        source=GoldenQuestion.Source.CONVERSATION,
        source_ref=message.id,
        verdict=verdict if verdict in ("right", "wrong") else "",
        answer=message.text,
        cited=list(dict.fromkeys(str(c.get("title", "")) for c in citations if c.get("title"))),
    )


def golden_prefill_from_gap(*, tenant: Tenant, gap_id: uuid.UUID | str) -> Prefill:
    """From a knowledge gap: its (redacted) question; the editor says which policy now answers it, or
    that the assistant must keep saying it does not know."""
    gap = access_gap(tenant=tenant, gap_id=gap_id)
    return Prefill(
        question=gap.question,
        source=GoldenQuestion.Source.GAP,
        source_ref=gap.id,
        nearest=[n for n in gap.nearest or [] if isinstance(n, dict)],
    )


def golden_source_checked(*, tenant: Tenant, source: str, source_ref: str) -> tuple[str, uuid.UUID | None]:
    """The (source, reference) a submitted form may claim: a reference must be the company's own message
    or gap, else the question counts as added by hand."""
    if (
        source == GoldenQuestion.Source.CONVERSATION
        and _is_uuid(source_ref)
        and Message.objects.filter(tenant=tenant, id=source_ref, role=Message.Role.ASSISTANT).exists()
    ):
        return source, uuid.UUID(source_ref)
    if source == GoldenQuestion.Source.GAP and _is_uuid(source_ref):
        try:
            return source, access_gap(tenant=tenant, gap_id=source_ref).id
        except NotFound:
            pass
    return GoldenQuestion.Source.MANUAL, None


def golden_policies(*, tenant: Tenant) -> QuerySet[Document]:
    """The documents a golden question may name, by title."""
    return documents_for_tenant(tenant=tenant).order_by("title")


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
