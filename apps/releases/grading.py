"""How an answer is graded against what the company knows is right: the one copy that golden runs
(apps/releases/runner.py), bench/answers.py and /work/shared/tools/widget_answers.py's rule share.

- An answerable question is right when the answer holds one of its fact phrases (case-insensitive, curly
  quotes and runs of spaces folded) and a citation's title equals the policy's title (`need_document`;
  bench/answers.py's labelled set accepts any citation).
- An unanswerable one is rightly abstained when the answer cites nothing and says it does not know.
- The unsupported-number audit, independent of apps.guardrails.support: every composed sentence shown has
  each of its numbers and amounts (digits, and number words read as digits; "€12.00" == "12") looked up
  among the numbers of the evidence sentences; a sentence holding one that is not there counts once.

Pure functions of text: no Django, so the benchmark imports it before it starts its stack.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

# widget_answers.py's: an abstention says it does not know; an answer with a disclaimer under it is not one.
ABSTAIN_WORDS = (
    "couldn't find",
    "could not find",
    "don't know",
    "do not know",
    "no information",
    "not in our policies",
)

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
_SPACES = re.compile(r"\s+")


def fold(text: str) -> str:
    """Case, curly quotes and runs of spaces folded, as the phrases are matched."""
    return _SPACES.sub(" ", text.translate(_QUOTES).casefold())


@dataclass(frozen=True)
class Verdict:
    right: bool
    abstained: bool  # the reply abstained, or cites nothing and says it does not know
    document_cited: bool  # a citation's title is the expected policy's


def answer_grade(
    *,
    text: str,
    titles: Sequence[str],
    answerable: bool,
    expect: Iterable[str] = (),
    document: str = "",
    need_document: bool = True,
    reply_abstained: bool = False,
) -> Verdict:
    """Grades one final answer: `text` as the customer saw it, `titles` of its citations."""
    folded = fold(text)
    says_unknown = any(word in folded for word in ABSTAIN_WORDS)
    abstained = reply_abstained or (not titles and says_unknown)
    document_cited = bool(document) and any(t.casefold() == document.casefold() for t in titles)
    if answerable:
        fact = any(fold(phrase) in folded for phrase in expect)
        right = fact and (document_cited if need_document else bool(titles))
    else:
        right = not titles and says_unknown
    return Verdict(right=right, abstained=abstained, document_cited=document_cited)


_DIGITS = re.compile(r"\d+(?:[.,]\d+)*")
_NUMBER_WORDS = {
    word: n
    for n, word in enumerate(
        (
            *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
            *("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen"),
            *("nineteen", "twenty"),
        )
    )
}
_NUMBER_WORDS.update({"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "ninety": 90, "hundred": 100})
_WORD = re.compile(r"[a-z]+")


def numbers_in(text: str) -> set[str]:
    """The numbers a text states, as plain digits: "€12.00" -> "12", "1,000" -> "1000", "three" -> "3".
    Deliberately simpler and stricter than the support check: no units, no question."""
    folded = text.casefold()
    found: set[str] = set()
    for match in _DIGITS.finditer(folded):
        value = match.group(0)
        value = re.sub(r",(?=\d{3}\b)", "", value).replace(",", ".")
        if "." in value:
            value = value.rstrip("0").rstrip(".")
        found.add(str(int(value)) if value.isdigit() else value)
    found.update(str(_NUMBER_WORDS[w]) for w in _WORD.findall(folded) if w in _NUMBER_WORDS)
    return found


def unsupported_numbers(
    *, shown: Iterable[str], evidence: Iterable[str], question: str
) -> list[dict[str, Any]]:
    """Each composed sentence shown that states a number none of the evidence sentences holds:
    {"sentence", "missing": [...], "in_question": the customer's own question holds every missing one}."""
    allowed = numbers_in(" ".join(evidence))
    asked = numbers_in(question)
    found = []
    for sentence in shown:
        missing = sorted(numbers_in(sentence) - allowed)
        if missing:
            found.append({"sentence": sentence, "missing": missing, "in_question": set(missing) <= asked})
    return found


def trace_evidence_sentences(retrieval: dict[str, Any]) -> list[str]:
    """The evidence sentences an AssistantTrace.retrieval recorded."""
    return [s for item in retrieval.get("evidence") or [] for s in item.get("sentences") or []]
