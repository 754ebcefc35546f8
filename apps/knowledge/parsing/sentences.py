"""Sentence units: the smallest spans of a passage the assistant can quote as evidence.

A unit is a sentence of prose, a list item, a table row, or a lead-in line ("You can pay by:"). Lines come
first: in chunk text, list items, table rows and lead-ins each sit on their own line (the readers put every
block, list item and table row on one), so every line is split into sentences on its own and never joined
with the next. Unit text is a verbatim slice of the chunk text, so a caller can find it there again.

`SENTENCE_BREAK` is also the chunker's sentence boundary (chunking.py): chunks and units agree on where a
sentence ends. A full stop after an abbreviation ("e.g.", "approx.") never ends a sentence, nor one after
a numbering word before a number ("No. 5", "p. 12"); amounts ("€12.50") hold no space, so never split.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

# Typographic quotes and CJK full stops are spelled as escapes so that they are unmistakable.
OPEN_QUOTES = "\"'\u201c\u2018(\\["
CLOSE_QUOTES = "\"'\u201d\u2019)\\]"
CJK_STOPS = "\u3002\uff01\uff1f"

# Never the end of a sentence, whatever follows ("e.g. Ireland", "approx. 30 days").
_ABBREVIATIONS = (
    "e.g.",
    "i.e.",
    "approx.",
    "vs.",
    "cf.",
    "incl.",
    "excl.",
    "esp.",
    "viz.",
    "resp.",
    "Mr.",
    "Mrs.",
    "Ms.",
    "Dr.",
    "Prof.",
)
# Not the end of a sentence before a number ("No. 5", "p. 12", "max. 10 GB"); before a capital they may be
# ("The answer is no. We ...").
_NUMBERING = (
    "No.",
    "Nos.",
    "Nr.",
    "Art.",
    "Sec.",
    "Para.",
    "p.",
    "pp.",
    "ch.",
    "Fig.",
    "Vol.",
    "min.",
    "max.",
)


def _not_after(words: Iterable[str]) -> str:
    # One fixed-width lookbehind per word (Python's lookbehinds cannot alternate between widths).
    return "".join(rf"(?<!\b(?i:{re.escape(word)}))" for word in words)


SENTENCE_BREAK = re.compile(
    rf"(?:(?<=[.!?])|(?<=[.!?][{CLOSE_QUOTES}]))"
    + _not_after(_ABBREVIATIONS)
    # An ordered list's marker ("1. ", "12. ") at the start of a line is not a sentence.
    + r"(?<!^\d\.)(?<!^\d\d\.)"
    + rf"(?:{_not_after(_NUMBERING)}|(?=\s+[{OPEN_QUOTES}]?[A-Z]))"
    + rf"\s+(?=[{OPEN_QUOTES}]?[A-Z0-9])"
    + rf"|(?<=[{CJK_STOPS}])",
    re.MULTILINE,
)
_WORDISH = re.compile(r"\w")


def split_units(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the units of `text`, in order, each stripped of surrounding whitespace."""
    units: list[tuple[int, int]] = []
    line_start = 0
    for line in text.split("\n"):
        position = 0
        for match in SENTENCE_BREAK.finditer(line):
            _add(units, line, line_start, position, match.start())
            position = match.end()
        _add(units, line, line_start, position, len(line))
        line_start += len(line) + 1
    return units


def _add(units: list[tuple[int, int]], line: str, offset: int, start: int, end: int) -> None:
    piece = line[start:end]
    if not _WORDISH.search(piece):
        return  # rules, bullets and stray punctuation carry nothing to quote
    start += len(piece) - len(piece.lstrip())
    end -= len(piece) - len(piece.rstrip())
    units.append((offset + start, offset + end))


class ChunkText(Protocol):
    """What units are cut from: a chunk as the chunker drafts it or as it is stored."""

    @property
    def ordinal(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def section_path(self) -> Sequence[str]: ...
    @property
    def page(self) -> int | None: ...


@dataclass(frozen=True)
class SentenceDraft:
    ordinal: int  # order within the version
    chunk_ordinal: int  # the first chunk holding the unit
    section_ordinal: int  # which run of consecutive same-section chunks it belongs to
    text: str
    section_path: tuple[str, ...]
    page: int | None
    start: int  # offsets of `text` in the chunk's text
    end: int


def sentence_drafts(chunks: Iterable[ChunkText]) -> list[SentenceDraft]:
    """The units of a version's chunks, each once: consecutive chunks of one section overlap (the chunker
    repeats up to ~40 tokens of the previous chunk at the start of the next), and a unit read in that
    overlap belongs to the earlier chunk. Same-section chunks are found by their section path, the only
    trace of a section the stored chunks keep."""
    drafts: list[SentenceDraft] = []
    previous: ChunkText | None = None
    section = -1
    for chunk in sorted(chunks, key=lambda c: c.ordinal):
        path = tuple(chunk.section_path)
        if previous is None or tuple(previous.section_path) != path or previous.ordinal != chunk.ordinal - 1:
            section, overlap = section + 1, 0
        else:
            overlap = overlap_length(previous.text, chunk.text)
        for start, end in split_units(chunk.text):
            if end <= overlap:
                continue  # read already, whole, in the previous chunk
            if start < overlap:
                # A unit straddling the overlap's end (a sentence the chunker had to cut between words):
                # its first part was read in the previous chunk.
                start = overlap + len(chunk.text[overlap:end]) - len(chunk.text[overlap:end].lstrip())
                if not _WORDISH.search(chunk.text[start:end]):
                    continue
            drafts.append(
                SentenceDraft(
                    ordinal=len(drafts),
                    chunk_ordinal=chunk.ordinal,
                    section_ordinal=section,
                    text=chunk.text[start:end],
                    section_path=path,
                    page=chunk.page,
                    start=start,
                    end=end,
                )
            )
        previous = chunk
    return drafts


def overlap_length(previous: str, current: str) -> int:
    """How many leading characters of `current` repeat the end of `previous` (0 if none).

    The overlap is whole words: it starts after whitespace in `previous` and ends before whitespace in
    `current`. The longest such repeat is taken."""
    limit = min(len(previous), len(current))
    for length in range(limit, 0, -1):
        if length < len(current) and not current[length].isspace():
            continue
        if length < len(previous) and not previous[-length - 1].isspace():
            continue
        if current[length - 1].isspace():
            continue
        if previous.endswith(current[:length]):
            return length
    return 0
