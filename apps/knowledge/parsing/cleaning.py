"""Text normalisation every format goes through, and the builder that turns headings and text into blocks.

Invisible characters are removed before anything else: they are the usual way to smuggle instructions
past a human reviewer ("ignore previous instructions" spelled in tag characters, words split by zero-width
spaces so that filters miss them), and retrieval works on what a reader sees.
"""

from __future__ import annotations

import re
import unicodedata

from .document import Block, Extracted, Limits
from .errors import empty_error, too_many_chars_error


def _ranges(*spans: tuple[int, int]) -> dict[int, None]:
    return {cp: None for start, end in spans for cp in range(start, end + 1)}


_INVISIBLE = _ranges(
    (0x00AD, 0x00AD),  # soft hyphen
    (0x061C, 0x061C),  # Arabic letter mark (bidi)
    (0x180E, 0x180E),  # Mongolian vowel separator (a former zero-width space)
    (0x200B, 0x200F),  # zero-width space/joiners, LRM/RLM
    (0x202A, 0x202E),  # bidi embeddings and overrides
    (0x2060, 0x2064),  # word joiner, invisible operators
    (0x2066, 0x206F),  # bidi isolates, deprecated format characters
    (0xFE00, 0xFE0F),  # variation selectors: can encode arbitrary bytes invisibly
    (0xFEFF, 0xFEFF),  # byte-order mark / zero-width no-break space
    (0xFFF9, 0xFFFB),  # interlinear annotation controls
    (0xE0000, 0xE007F),  # tag characters ("ASCII smuggling")
    (0xE0100, 0xE01EF),  # variation selectors supplement
)
# C0/C1 controls other than tab and newline (form feeds, NULs, DEL, ...) become spaces.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_HSPACE = re.compile(r"[^\S\n]+")
_BLANK_RUNS = re.compile(r"\n{3,}")
_LETTER = re.compile(r"[^\W\d_]")
_WORDISH = re.compile(r"\w")


def clean_text(raw: str, *, keep_newlines: bool = False) -> str:
    """Strips invisible characters, NFKC-normalises (ligatures and full-width forms become plain letters)
    and collapses whitespace; `keep_newlines` keeps line structure for tables and code."""
    text = raw
    if not text.isascii():  # ASCII is already NFKC and holds none of the invisible characters
        text = text.translate(_INVISIBLE)
        text = unicodedata.normalize("NFKC", text)
        # NFKC can map some compatibility characters onto ones we strip, so strip again.
        text = text.translate(_INVISIBLE)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROLS.sub(" ", text)
    if not keep_newlines:
        return " ".join(text.split())
    lines = [line.rstrip() for line in text.replace("\t", "    ").split("\n")]
    text = "\n".join(lines)
    return _BLANK_RUNS.sub("\n\n", text).strip("\n")


def clean_inline(raw: str) -> str:
    """For one-line values (titles, headings, table cells)."""
    return clean_text(raw)


def has_letters(text: str) -> bool:
    return _LETTER.search(text) is not None


class BlockBuilder:
    """Collects blocks in reading order and tracks the heading path above them.

    Heading levels only need to be comparable: a heading pops every open heading of the same or deeper
    level, so a document that jumps from H1 to H3 still nests correctly.
    """

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._open: list[tuple[int, str]] = []
        self._path: tuple[str, ...] = ()
        self._section_index = 0
        self._chars = 0
        self.blocks: list[Block] = []
        self.first_headings: dict[int, str] = {}
        self.warnings: list[str] = []

    @property
    def section_path(self) -> tuple[str, ...]:
        return self._path

    def heading(self, level: int, raw: str) -> str:
        text = clean_inline(raw)
        if not _WORDISH.search(text):
            return ""
        while self._open and self._open[-1][0] >= level:
            self._open.pop()
        self._open.append((level, text))
        self._path = tuple(title for _, title in self._open)
        self._section_index += 1
        self.first_headings.setdefault(level, text)
        return text

    def add(self, raw: str, *, page: int | None = None, keep_newlines: bool = False) -> None:
        text = clean_text(raw, keep_newlines=keep_newlines)
        # Rules, bullets and stray punctuation carry nothing to retrieve.
        if not _WORDISH.search(text):
            return
        self._chars += len(text)
        if self._chars > self._limits.max_chars:
            raise too_many_chars_error(self._chars, self._limits.max_chars)
        self.blocks.append(
            Block(text=text, section_path=self._path, page=page, section_index=self._section_index)
        )

    def finish(self, *, kind: str, title: str, page_count: int | None = None) -> Extracted:
        if not any(has_letters(block.text) for block in self.blocks):
            raise empty_error()
        return Extracted(
            kind=kind,
            title=clean_inline(title),
            blocks=self.blocks,
            page_count=page_count,
            warnings=tuple(self.warnings),
        )
