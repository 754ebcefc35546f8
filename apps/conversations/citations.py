"""Citations checked against what was retrieved: an answer may only cite passages the model was given.

The model is asked to cite with [n]. Markers naming a passage it was not given are removed from the final
text. When an answer cites nothing (small models often don't), the passages that the answer's content
words actually come from are attached as inferred citations; an answer supported by no passage is
flagged ungrounded, and the customer is told so and offered a person.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from apps.knowledge.selectors import Passage

MARKER = re.compile(r"\s?\[(\d{1,3})\]")
WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")
# Words that say nothing about where an answer came from.
STOPWORDS = frozenset(
    [
        "about",
        "above",
        "after",
        "again",
        "against",
        "also",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "cannot",
        "could",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "from",
        "further",
        "have",
        "having",
        "here",
        "hers",
        "herself",
        "himself",
        "into",
        "itself",
        "just",
        "more",
        "most",
        "myself",
        "once",
        "only",
        "other",
        "ours",
        "ourselves",
        "over",
        "same",
        "should",
        "some",
        "such",
        "than",
        "that",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "under",
        "until",
        "very",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "whom",
        "will",
        "with",
        "would",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "please",
        "thank",
        "thanks",
        "help",
        "know",
        "sorry",
        "customer",
        "question",
        "answer",
        "policy",
        "policies",
        "information",
        "contact",
        "person",
    ]
)
INFERRED_SUPPORT = 0.45
MAX_INFERRED = 2


@dataclass(frozen=True)
class CitationCheck:
    text: str  # the answer without invalid markers
    citations: list[dict[str, Any]]
    grounded: bool
    invalid_markers: int
    inferred: bool


def _content_words(text: str) -> set[str]:
    return {w for w in WORD.findall(text.lower()) if len(w) >= 4 and w not in STOPWORDS}


def citation_render(n: int, passage: Passage, *, inferred: bool) -> dict[str, Any]:
    return {
        "n": n,
        "chunk_id": str(passage.chunk_id),
        "document_id": str(passage.document_id),
        "title": passage.document_title,
        "version": passage.version_number,
        "section": " > ".join(passage.section_path),
        "page": passage.page,
        "inferred": inferred,
    }


def citations_check(text: str, passages: list[Passage]) -> CitationCheck:
    invalid = 0
    cited: list[int] = []

    def keep_valid(match: re.Match[str]) -> str:
        nonlocal invalid
        n = int(match.group(1))
        if 1 <= n <= len(passages):
            if n not in cited:
                cited.append(n)
            return match.group(0)
        invalid += 1
        return ""

    cleaned = MARKER.sub(keep_valid, text).strip()
    if cited:
        citations = [citation_render(n, passages[n - 1], inferred=False) for n in cited]
        return CitationCheck(cleaned, citations, grounded=True, invalid_markers=invalid, inferred=False)
    words = _content_words(cleaned)
    if not words:
        return CitationCheck(cleaned, [], grounded=False, invalid_markers=invalid, inferred=False)
    support = []
    for n, passage in enumerate(passages, start=1):
        share = len(words & _content_words(passage.text)) / len(words)
        if share >= INFERRED_SUPPORT:
            support.append((share, n))
    support.sort(reverse=True)
    chosen = sorted(n for _, n in support[:MAX_INFERRED])
    citations = [citation_render(n, passages[n - 1], inferred=True) for n in chosen]
    return CitationCheck(cleaned, citations, grounded=bool(citations), invalid_markers=invalid, inferred=True)
