"""Evidence: the few published sentences that answer a question, with the neighbours they need.

Candidates come from the retriever (apps.knowledge.retrieval): the sentences nearest the question's
vector and the best full-text matches, each with its cosine similarity. They are ranked here by

    score = W_SIM · similarity + W_LEX · lexical + W_PASSAGE · passage similarity
            + ANSWER_TYPE (the question asks for an amount, a duration or a count, and the sentence has one)
            ± qualified-thing fit

- lexical: the share of the question's content terms (IDF-weighted over the candidates) found in the
  sentence or its section path;
- passage similarity: how close the passage holding the sentence came (a sentence inside a passage that
  answers the question is more likely the answer than a lone lookalike);
- qualified things ("Zone 3", "20 GB", "€12"): a sentence naming the question's thing gains, one naming
  only another thing of the same kind ("Zone 2" for "Zone 3") loses.

The best sentence is kept, with up to MAX_UNITS - 1 more that score close to it and cover question terms
it lacks, sit next to a chosen one, or are as near the question in meaning. A kept sentence that leans
on the one before ("This…", "Above that…", a list item after "You can:") brings it along, and a lead-in
ending in ":" brings the items after it.

Weights and margins were set on bench/data/questions.jsonl (bench/answers.py reports the result); they
are constants of the method, not of any one company's documents.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from apps.conversations.answering.terms import content_terms, qualified_things

W_SIM = 0.6
W_LEX = 0.2
W_PASSAGE = 0.6
ANSWER_TYPE = 0.1
QUALIFIED_MATCH = 0.08
QUALIFIED_CLASH = 0.2
MAX_UNITS = 3  # chosen sentences; their needed neighbours come on top
CLOSE_MARGIN = 0.15  # a further sentence must score within this of the best
SIMILAR_MARGIN = 0.03  # ... and add question terms, sit next to a chosen one, or be about as near in meaning
MAX_NEIGHBOURS = 3

# What a question asks for, and what a sentence holding that looks like. "Is it free…" wants a sentence
# saying so, "how much…" an amount, "how long / when / valid…" a duration, "how many…" a count.
_AMOUNT = re.compile(r"[€£$]\s?\d|\b\d+(?:\.\d+)?\s?(?:euros?|eur|pounds?|dollars?)\b", re.IGNORECASE)
_DURATION = re.compile(
    r"\b(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten|twelve|fourteen|thirty)\s*(?:-|\s)?"
    r"(?:working\s|business\s|calendar\s)?(?:day|week|month|year|hour|minute)s?\b",
    re.IGNORECASE,
)
_COUNT = re.compile(r"\b\d+\b|\b(?:one|two|three|four|five|six|seven|eight|nine|ten)\b", re.IGNORECASE)
# "Is it free?" is answered by a sentence saying so, in whatever words: "at no extra cost", "included".
_FREE = re.compile(
    r"\bfree\b|\bno (?:extra |additional )?(?:cost|charge|fee)s?\b|"
    r"\bat no (?:extra |additional )?(?:cost|charge)\b|\bnothing extra\b|"
    r"\bwithout (?:any )?(?:extra |additional )?(?:cost|charge|fee)s?\b|\bincluded\b",
    re.IGNORECASE,
)
_ASKS_FREE = re.compile(
    r"\bfree\b|\bcost anything\b|\bfor nothing\b|\bpay (?:anything )?extra\b|\bcharged? (?:anything|extra)\b",
    re.IGNORECASE,
)
_ASKS_AMOUNT = re.compile(
    r"\bhow much\b|\bcost|\bprice|\bfees?\b|\bcharge|\bpay\b|\bcompensat|\bget back\b|\brefund",
    re.IGNORECASE,
)
_ASKS_DURATION = re.compile(
    r"\bhow long\b|\bwhen\b|\bhow soon\b|\bhow quickly\b|\bvalid\b|\bdeadline\b|"
    r"\bhow many (?:days|weeks|months|years|hours)\b",
    re.IGNORECASE,
)
_ASKS_COUNT = re.compile(r"\bhow many\b", re.IGNORECASE)
_ASKS_UNITS = re.compile(
    r"\bhow many (?:working |business )?(?:days|weeks|months|years|hours)\b", re.IGNORECASE
)


def answer_type(question: str) -> re.Pattern[str] | None:
    """The shape of what the question asks for, as a pattern a sentence holding it matches."""
    if _ASKS_UNITS.search(question):
        return _DURATION
    if _ASKS_COUNT.search(question):
        return _COUNT
    if _ASKS_FREE.search(question):
        return _FREE
    if _ASKS_AMOUNT.search(question):
        return _AMOUNT
    if _ASKS_DURATION.search(question):
        return _DURATION
    return None


_LEANS_BACK = re.compile(
    r"^(?:this|that|these|those|it|its|they|their|such|however|but|also|otherwise|above that|below that|"
    r"in that case|if so|if not|then|there|here|the same|both|either|neither|each of)\b",
    re.IGNORECASE,
)


class Candidate(Protocol):
    @property
    def sentence_id(self) -> uuid.UUID: ...
    @property
    def chunk_id(self) -> uuid.UUID: ...
    @property
    def document_id(self) -> uuid.UUID: ...
    @property
    def document_title(self) -> str: ...
    @property
    def version_number(self) -> int: ...
    @property
    def section_path(self) -> list[str]: ...
    @property
    def page(self) -> int | None: ...
    @property
    def ordinal(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def similarity(self) -> float: ...
    @property
    def passage_similarity(self) -> float: ...


@dataclass(frozen=True)
class Ranked:
    candidate: Candidate
    score: float
    lexical: float
    covered: frozenset[str]


@dataclass(frozen=True)
class EvidenceItem:
    """One quoted unit: consecutive sentences of one section, cited as one source."""

    n: int
    sentences: tuple[str, ...]
    sentence_ids: tuple[str, ...]
    chunk_id: str
    document_id: str
    document_title: str
    version_number: int
    section_path: tuple[str, ...]
    page: int | None
    score: float

    @property
    def text(self) -> str:
        return " ".join(self.sentences)

    def citation(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "chunk_id": self.chunk_id,
            "document_id": self.document_id,
            "title": self.document_title,
            "version": self.version_number,
            "section": " > ".join(self.section_path),
            "page": self.page,
            "inferred": False,
            "quoted": True,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.citation(),
            "sentences": list(self.sentences),
            "sentence_ids": list(self.sentence_ids),
            "score": round(self.score, 4),
        }

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> EvidenceItem:
        section = row.get("section") or ""
        return cls(
            n=int(row["n"]),
            sentences=tuple(row["sentences"]),
            sentence_ids=tuple(row.get("sentence_ids") or ()),
            chunk_id=str(row["chunk_id"]),
            document_id=str(row["document_id"]),
            document_title=str(row["title"]),
            version_number=int(row["version"]),
            section_path=tuple(section.split(" > ")) if section else (),
            page=row.get("page"),
            score=float(row.get("score") or 0.0),
        )


@dataclass(frozen=True)
class Evidence:
    items: tuple[EvidenceItem, ...]
    score: float  # the best sentence's score: with the passage similarity, what abstention looks at
    ranked: tuple[Ranked, ...] = field(default=(), repr=False)

    @property
    def text(self) -> str:
        return "\n".join(item.text for item in self.items)

    def citations(self) -> list[dict[str, Any]]:
        seen: dict[int, dict[str, Any]] = {}
        for item in self.items:
            seen.setdefault(item.n, item.citation())
        return list(seen.values())


def _idf(question_terms: set[str], candidates: Sequence[Candidate]) -> dict[str, float]:
    n = len(candidates) or 1
    df = dict.fromkeys(question_terms, 0)
    for c in candidates:
        present = set(content_terms(c.text)) | set(content_terms(" ".join(c.section_path)))
        for term in question_terms & present:
            df[term] += 1
    return {t: math.log(1 + n / (1 + df[t])) for t in question_terms}


def evidence_rank(question: str, candidates: Sequence[Candidate]) -> list[Ranked]:
    """Candidates best first (see the module docstring)."""
    terms = set(content_terms(question))
    idf = _idf(terms, candidates)
    total = sum(idf.values()) or 1.0
    asked = qualified_things(question)
    asked_kinds = {kind for kind, _ in asked}
    wanted = answer_type(question)
    ranked: list[Ranked] = []
    for c in candidates:
        own = set(content_terms(c.text))
        context = set(content_terms(" ".join([c.document_title, *c.section_path])))
        covered = terms & own
        lexical = (
            sum(idf[t] for t in covered) + 0.5 * sum(idf[t] for t in (terms & context) - covered)
        ) / total
        score = W_SIM * c.similarity + W_LEX * lexical + W_PASSAGE * c.passage_similarity
        if wanted is not None and wanted.search(c.text):
            score += ANSWER_TYPE
        if asked:
            named = qualified_things(c.text) | qualified_things(" ".join(c.section_path))
            if asked & named:
                score += QUALIFIED_MATCH
            elif {kind for kind, _ in named} & asked_kinds:
                score -= QUALIFIED_CLASH
        ranked.append(Ranked(candidate=c, score=score, lexical=lexical, covered=frozenset(covered)))
    ranked.sort(key=lambda r: r.score, reverse=True)
    return ranked


def evidence_choose(ranked: Sequence[Ranked]) -> list[Ranked]:
    """The best sentence and up to MAX_UNITS - 1 close ones that add question terms it lacks, neighbour a
    chosen one, or are as near the question in meaning (a paraphrase shares no words: "free" and "at no
    extra cost")."""
    if not ranked:
        return []
    best = ranked[0]
    chosen = [best]
    covered = set(best.covered)
    seen = {best.candidate.text.strip().lower()}
    for r in ranked[1:]:
        if len(chosen) >= MAX_UNITS or r.score < best.score - CLOSE_MARGIN:
            break
        text = r.candidate.text.strip().lower()
        if text in seen:
            continue
        same_section = any(
            r.candidate.document_id == c.candidate.document_id
            and list(r.candidate.section_path) == list(c.candidate.section_path)
            and abs(r.candidate.ordinal - c.candidate.ordinal) <= 2
            for c in chosen
        )
        as_near = r.candidate.similarity >= best.candidate.similarity - SIMILAR_MARGIN
        if r.covered - covered or same_section or as_near:
            chosen.append(r)
            covered |= r.covered
            seen.add(text)
    return chosen


def needs_previous(text: str) -> bool:
    return bool(_LEANS_BACK.match(text.strip()))


def evidence_assemble(
    chosen: Sequence[Ranked],
    neighbours: dict[uuid.UUID, tuple[list[Any], list[Any]]],
) -> Evidence:
    """Groups the chosen sentences with the neighbours they need into cited units, in document order
    within a unit and best unit first."""
    units: list[dict[str, Any]] = []
    for r in chosen:
        c = r.candidate
        before, after = neighbours.get(c.sentence_id, ([], []))
        rows: dict[int, Any] = {c.ordinal: c}
        if before and (needs_previous(c.text) or before[-1].text.rstrip().endswith(":")):
            rows[before[-1].ordinal] = before[-1]
            # a list item's lead-in may sit two back ("You can: / - by card / - by transfer")
            if len(before) > 1 and before[-2].text.rstrip().endswith(":") and needs_previous(before[-1].text):
                rows[before[-2].ordinal] = before[-2]
        if c.text.rstrip().endswith(":"):
            for item in after[:MAX_NEIGHBOURS]:
                rows[item.ordinal] = item
        merged = False
        for unit in units:
            if (
                unit["doc"] == c.document_id
                and unit["section"] == list(c.section_path)
                and (min(rows) <= max(unit["rows"]) + 1 and max(rows) >= min(unit["rows"]) - 1)
            ):
                unit["rows"].update(rows)
                merged = True
                break
        if not merged:
            units.append({"doc": c.document_id, "section": list(c.section_path), "rows": rows, "best": r})
    items = []
    numbers: dict[str, int] = {}  # one citation number per passage: two units of one passage share it
    for unit in units:
        best: Ranked = unit["best"]
        c = best.candidate
        n = numbers.setdefault(str(c.chunk_id), len(numbers) + 1)
        ordered = [unit["rows"][k] for k in sorted(unit["rows"])]
        items.append(
            EvidenceItem(
                n=n,
                sentences=tuple(s.text.strip() for s in ordered),
                sentence_ids=tuple(str(s.sentence_id) for s in ordered),
                chunk_id=str(c.chunk_id),
                document_id=str(c.document_id),
                document_title=c.document_title,
                version_number=c.version_number,
                section_path=tuple(c.section_path),
                page=c.page,
                score=best.score,
            )
        )
    return Evidence(items=tuple(items), score=chosen[0].score if chosen else 0.0, ranked=tuple(chosen))
