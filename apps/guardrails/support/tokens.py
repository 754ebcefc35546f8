"""A sentence normalised (quotes, "p.m.") and cut into tokens: codes, times, numbers, words, symbols."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_TOKEN_RE = re.compile(
    r"(?P<code>(?<![\w-])(?:[A-Za-z]{1,5}-\d{2,}|[A-Z]{1,5}\d{3,})(?!\w))"
    r"|(?P<time>\d{1,2}:\d{2})(?!\d)"
    r"|(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?:(?P<ord>st|nd|rd|th)(?![A-Za-z]))?"
    r"|(?P<word>[A-Za-z]+(?:'[A-Za-z]+)*)"
    r"|(?P<sym>[€£$%])"
    r"|(?P<punct>[;:,.!?()\[\]\"/\n\u2013\u2014-])"
)
_AMPM_RE = re.compile(r"\b([ap])\.\s?m\.?(?!\w)", re.IGNORECASE)
_INITIAL_AFTER = frozenset({".", "!", "?", ":", ";", "\n", "(", '"', "-", "\u2013", "\u2014"})


@dataclass(slots=True)
class _Tok:
    kind: str  # code, time, num, ord, word, sym, punct
    text: str
    low: str
    start: int
    end: int
    num: float = 0.0


def _normalise(text: str) -> str:
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    return _AMPM_RE.sub(lambda m: m.group(1) + "m", text)


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    for m in _TOKEN_RE.finditer(text):
        value = 0.0
        if m.group("num") is not None:
            kind = "ord" if m.group("ord") else "num"
            value = float(m.group("num").replace(",", ""))
        else:
            kind = m.lastgroup or "punct"
        tok_text = m.group(0)
        toks.append(_Tok(kind, tok_text, tok_text.lower(), m.start(), m.end(), value))
    return toks


def _initial(toks: Sequence[_Tok], i: int) -> bool:
    return i == 0 or toks[i - 1].low in _INITIAL_AFTER
