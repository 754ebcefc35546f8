"""Blocks to retrieval chunks, following the document's structure.

- A chunk never spans two sections: a new heading (even one with the same title) starts a new chunk.
- Inside a section, small neighbouring blocks are packed together up to `target_tokens`; a block longer
  than `max_tokens` is split at line breaks, then sentence ends, then (last resort) between words.
- Consecutive chunks of one section overlap by up to `overlap_tokens`, starting at a sentence boundary
  where the window allows, so a fact cut by a boundary is still whole in one chunk.
- Chunk text is the body only; the heading path travels separately in `section_path`.

Token estimate: words (runs of letters/digits; each CJK character counts as one) * 1.3, rounded up.
English prose with a BPE tokenizer averages ~1.3 tokens per word, and the estimate needs no tokenizer
in this process; budgets leave headroom for the cases where it is low.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from .document import Block, Extracted
from .sentences import CJK_STOPS, SENTENCE_BREAK

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_WORD = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+")
# One definition of where a sentence ends, shared with the sentence units retrieval quotes.
_SENTENCE_BREAK = SENTENCE_BREAK
_CJK_STOPS = CJK_STOPS
_PARAGRAPH_JOINER = "\n\n"


@dataclass(frozen=True)
class ChunkDraft:
    ordinal: int
    text: str
    section_path: tuple[str, ...]
    page: int | None
    token_estimate: int


def count_words(text: str) -> int:
    return sum(1 for _ in _WORD.finditer(text))


def _tokens(words: int) -> int:
    return (words * 13 + 9) // 10  # ceil(words * 1.3) in integers, so budgets hold exactly


def _words_within(tokens: int) -> int:
    return tokens * 10 // 13


def estimate_tokens(text: str) -> int:
    return _tokens(count_words(text))


@dataclass(frozen=True)
class _Piece:
    text: str
    page: int | None
    words: int
    joiner: str  # what separates it from the piece before it in a chunk


def chunk(
    extracted: Extracted, *, target_tokens: int = 220, max_tokens: int = 320, overlap_tokens: int = 40
) -> list[ChunkDraft]:
    if max_tokens < 2 or not 0 < target_tokens <= max_tokens:
        raise ValueError("need 0 < target_tokens <= max_tokens and max_tokens >= 2")
    if not 0 <= overlap_tokens < target_tokens:
        raise ValueError("need 0 <= overlap_tokens < target_tokens")
    target = max(1, _words_within(target_tokens))
    limit = max(1, _words_within(max_tokens))
    overlap = _words_within(overlap_tokens)
    drafts: list[ChunkDraft] = []
    sections = itertools.groupby(extracted.blocks, key=lambda b: (b.section_index, b.section_path))
    for (_, path), blocks in sections:
        pieces = [piece for block in blocks for piece in _pieces(block, target, limit)]
        for text, page in _pack(pieces, target, limit, overlap):
            drafts.append(
                ChunkDraft(
                    ordinal=len(drafts),
                    text=text,
                    section_path=path,
                    page=page,
                    token_estimate=estimate_tokens(text),
                )
            )
    return drafts


def _pieces(block: Block, target: int, limit: int) -> list[_Piece]:
    words = count_words(block.text)
    if words <= limit:
        return [_Piece(block.text, block.page, words, _PARAGRAPH_JOINER)]
    parts = _split(block.text, target, level=0)
    return [
        _Piece(text, block.page, count_words(text), _PARAGRAPH_JOINER if index == 0 else joiner)
        for index, (text, joiner) in enumerate(parts)
    ]


def _split(text: str, limit: int, *, level: int) -> list[tuple[str, str]]:
    """Pieces of at most `limit` words, each with the separator it had before it."""
    if count_words(text) <= limit:
        return [(text, " ")]
    if level == 0:
        parts, joiner = text.split("\n"), "\n"
    elif level == 1:
        parts, joiner = _SENTENCE_BREAK.split(text), " "
    else:
        return [(part, " ") for part in _split_words(text, limit)]
    parts = [part.strip() for part in parts if part.strip()]
    if len(parts) <= 1:
        return _split(text, limit, level=level + 1)
    result: list[tuple[str, str]] = []
    for part in parts:
        for index, (piece, inner_joiner) in enumerate(_split(part, limit, level=level + 1)):
            result.append((piece, joiner if index == 0 else inner_joiner))
    return result


def _split_words(text: str, limit: int) -> list[str]:
    """Cuts before every `limit`-th word, so a cut falls on whitespace when the text has any."""
    starts = [match.start() for match in _WORD.finditer(text)]
    cuts = [*starts[limit::limit], len(text)]
    pieces: list[str] = []
    position = 0
    for cut in cuts:
        piece = text[position:cut].strip()
        if piece:
            pieces.append(piece)
        position = cut
    return pieces


def _render(pieces: list[_Piece]) -> str:
    return "".join(
        piece.text if index == 0 else piece.joiner + piece.text for index, piece in enumerate(pieces)
    )


def _pack(pieces: list[_Piece], target: int, limit: int, overlap: int) -> Iterator[tuple[str, int | None]]:
    current: list[_Piece] = []
    words = 0
    for piece in pieces:
        if current and words + piece.words > target:
            yield _render(current), current[0].page
            tail = _tail(current, min(overlap, words // 2, limit - piece.words))
            current, words = ([tail], tail.words) if tail is not None else ([], 0)
        current.append(piece)
        words += piece.words
    if current:
        yield _render(current), current[0].page


def _tail(pieces: list[_Piece], want: int) -> _Piece | None:
    """The last `want` words of a chunk, started at a sentence boundary if one falls in that window."""
    if want <= 0:
        return None
    text = _render(pieces)
    starts = [match.start() for match in _WORD.finditer(text)]
    if len(starts) <= want:
        return None
    start = starts[-want]
    if not _starts_sentence(text, start):
        sentence = _SENTENCE_BREAK.search(text, start)
        if sentence is not None and sentence.end() < starts[-1]:
            start = sentence.end()
        elif (paragraph := text.find(_PARAGRAPH_JOINER, start)) != -1 and paragraph < starts[-1]:
            start = paragraph + len(_PARAGRAPH_JOINER)
    tail = text[start:].strip()
    page = _page_at(pieces, start)
    return _Piece(tail, page, count_words(tail), "")


def _starts_sentence(text: str, offset: int) -> bool:
    before = text[max(0, offset - 8) : offset].rstrip(" \t")
    return before.endswith("\n") or before.rstrip().endswith((".", "!", "?", *_CJK_STOPS))


def _page_at(pieces: list[_Piece], offset: int) -> int | None:
    position = 0
    page = pieces[0].page
    for index, piece in enumerate(pieces):
        if index:
            position += len(piece.joiner)
        if position > offset:
            break
        page = piece.page
        position += len(piece.text)
    return page
