"""Labelled questions through the evidence stage: what abstention at each threshold would do.

A labelled question is answerable (with the fact phrases a right answer shows, and optionally the
document it comes from) or not. Each is redacted, embedded and run through `evidence_for` exactly as a
customer's question is, with no threshold, and scored:

- answered right: answerable, confidence at or above the threshold, and the evidence shows a fact phrase
  (from the labelled document when one is named by title);
- answered wrong: answerable and answered, but the evidence lacks the fact;
- wrongly abstained: answerable, below the threshold;
- false answer: unanswerable, at or above the threshold;
- abstained: unanswerable, below the threshold.

`threshold_choose` takes the threshold with the best balanced accuracy between answering the answerable
and abstaining on the rest, the lower number of false answers breaking ties. Used by
`manage.py abstain_calibrate` and bench/answers.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from apps.accounts.models import Tenant
from apps.conversations.answering.select import evidence_for
from apps.guardrails.pii import pii_redact
from apps.llm.embeddings import embedder

EMBED_BATCH = 64


@dataclass(frozen=True)
class Labelled:
    question: str
    answerable: bool
    facts: tuple[str, ...] = ()
    document: str | None = None  # a title (matched against the evidence) or a file name (not matched)


@dataclass(frozen=True)
class Scored:
    item: Labelled
    confidence: float
    fact_shown: bool
    evidence: str


@dataclass(frozen=True)
class SweepRow:
    threshold: float
    answered_right: int
    answered_wrong: int
    wrongly_abstained: int
    false_answers: int
    abstained: int

    @property
    def balanced(self) -> float:
        answerable = self.answered_right + self.answered_wrong + self.wrongly_abstained
        unanswerable = self.false_answers + self.abstained
        a = (self.answered_right + self.answered_wrong) / answerable if answerable else 1.0
        u = self.abstained / unanswerable if unanswerable else 1.0
        return (a + u) / 2


def labelled_load(paths: Iterable[Path]) -> list[Labelled]:
    """JSON lines in either shape: {"question", "answerable", "answer", "document"} (bench/data) or
    {"q", "doc", "expect"} (acceptance sets). Raises ValueError naming the file and line of a bad row."""
    items: list[Labelled] = []
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if "q" in row:
                    facts = tuple(row.get("expect") or ())
                    items.append(Labelled(row["q"], bool(row.get("doc")), facts, row.get("doc")))
                else:
                    answer = row.get("answer")
                    facts = (answer,) if answer else ()
                    items.append(
                        Labelled(row["question"], bool(row["answerable"]), facts, row.get("document"))
                    )
            except (KeyError, TypeError, json.JSONDecodeError) as exc:
                raise ValueError(f"{path}:{number}: not a labelled question ({exc})") from None
    return items


def questions_score(*, tenant: Tenant, items: Sequence[Labelled]) -> list[Scored]:
    redacted = [pii_redact(item.question) for item in items]
    vectors: list[list[float]] = []
    for start in range(0, len(redacted), EMBED_BATCH):
        vectors.extend(embedder().embed([str(q) for q in redacted[start : start + EMBED_BATCH]]))
    scored = []
    for item, question, vector in zip(items, redacted, vectors, strict=True):
        selected = evidence_for(tenant=tenant, query=question, vector=vector, threshold=0.0)
        scored.append(
            Scored(
                item=item,
                confidence=selected.confidence,
                fact_shown=fact_shown(item, selected.evidence.items),
                evidence=selected.evidence.text,
            )
        )
    return scored


def fact_shown(item: Labelled, evidence_items: Sequence[object]) -> bool:
    if not item.answerable:
        return False
    titled = item.document is not None and not item.document.endswith(
        (".md", ".pdf", ".docx", ".html", ".txt")
    )
    for evidence in evidence_items:
        text = str(getattr(evidence, "text", "")).lower()
        title = str(getattr(evidence, "document_title", "")).lower()
        if titled and title != str(item.document).lower():
            continue
        if any(fact.lower() in text for fact in item.facts):
            return True
    return False


def threshold_sweep(scored: Sequence[Scored], *, step: float = 0.005) -> list[SweepRow]:
    if not scored:
        return []
    low = min(s.confidence for s in scored)
    high = max(s.confidence for s in scored)
    rows = []
    threshold = round(low - step, 3)
    while threshold <= high + step:
        rows.append(_row(scored, threshold))
        threshold = round(threshold + step, 3)
    return rows


def _row(scored: Sequence[Scored], threshold: float) -> SweepRow:
    right = wrong = missed = false = abstained = 0
    for s in scored:
        answered = s.confidence >= threshold
        if s.item.answerable:
            if not answered:
                missed += 1
            elif s.fact_shown:
                right += 1
            else:
                wrong += 1
        elif answered:
            false += 1
        else:
            abstained += 1
    return SweepRow(threshold, right, wrong, missed, false, abstained)


def threshold_choose(rows: Sequence[SweepRow]) -> SweepRow:
    if not rows:
        raise ValueError("no labelled questions to calibrate on")
    return max(rows, key=lambda r: (round(r.balanced, 6), -r.false_answers, r.answered_right))
