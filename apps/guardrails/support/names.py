"""Names: capitalised multi-word names, codes, acronyms and proper nouns ("Zone 2", "Travel Pass", "PAC"),
and a text as singular lower-case words to find them in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .quantities import _CURRENCY_CODES, _DATA_UNITS, _MONTHS, _WEEKDAYS
from .tokens import _initial, _Tok
from .vocabulary import _NEGATIONS, _STOPWORDS, _base_stem, _plural


@dataclass(frozen=True, slots=True)
class _Name:
    norm: str  # lower case, singular: "zone 2", "travel pass"
    raw: str
    first: int
    last: int
    family: str  # "zone" in "Zone 2", so "Zone 3" is its sibling
    number: str  # "2" in "Zone 2", "" when the name has no number


_NOT_NAME = (
    set(_DATA_UNITS)
    | set(_CURRENCY_CODES)
    | _WEEKDAYS
    | _MONTHS
    | {"am", "pm", "i", "i'm", "i'll", "i've", "i'd"}
)


def _capital(t: _Tok) -> int:
    """0: not part of a name; 1: an ordinary capitalised word; 2: a code, acronym or camel-case word."""
    if t.kind == "code":
        return 2
    if t.kind != "word" or t.low in _NOT_NAME or (t.low.endswith("s") and t.low[:-1] in _WEEKDAYS):
        return 0
    text = t.text
    if len(text) > 1 and (text.isupper() or any(c.isupper() for c in text[1:])):
        return 0 if t.low in _STOPWORDS or t.low in _NEGATIONS else 2
    return 1 if text[0].isupper() else 0


def _names(toks: Sequence[_Tok], text: str, lower_words: frozenset[str]) -> tuple[list[_Name], set[int]]:
    """Names in a sentence, and the number tokens they consumed ("2" in "Zone 2" is no quantity)."""
    names: list[_Name] = []
    consumed: set[int] = set()
    n, i = len(toks), 0
    while i < n:
        if not _capital(toks[i]):
            i += 1
            continue
        j = i + 1
        while j < n:
            if _capital(toks[j]):
                j += 1
            elif toks[j].low in ("-", "of", "&") and j + 1 < n and _capital(toks[j + 1]):
                j += 2
            else:
                break
        a, b = i, j - 1
        while a <= b and (toks[a].low in _STOPWORDS or toks[a].low in ("-", "&")):
            a += 1
        # A sentence's first word is capitalised anyway; it is part of a name only if the evidence never
        # writes it in lower case ("Call 150" is not a name, "Zone 2" is).
        if a <= b and _capital(toks[a]) == 1 and _initial(toks, a) and _base_stem(toks[a].low) in lower_words:
            a += 1
            while a <= b and toks[a].low in ("-", "of", "&"):
                a += 1
        numbered = j < n and toks[j].kind == "num" and a <= b
        if a > b or (a == b and _capital(toks[a]) == 1 and _initial(toks, a) and not numbered):
            i = j
            continue
        if numbered:
            consumed.add(j)
            b, j = j, j + 1
        words = [_plural(t.low) for t in toks[a : b + 1] if t.low != "-"]
        names.append(
            _Name(
                norm=" ".join(words),
                raw=text[toks[a].start : toks[b].end],
                first=a,
                last=b,
                family=words[0],
                number=toks[b].text if numbered else "",
            )
        )
        i = j
    return names, consumed


def _hay(toks: Sequence[_Tok]) -> str:
    """The text as singular lower-case words, for finding names; "Zones 2 and 3" also gives "zone 3"."""
    parts: list[str] = []
    extras: list[str] = []
    n = len(toks)
    for k, t in enumerate(toks):
        if t.kind == "punct":
            if t.low != "-":
                parts.append("|")
            continue
        if t.kind == "sym":
            continue
        parts.append(_plural(t.low))
        if t.kind == "word" and k + 1 < n and toks[k + 1].kind == "num":
            head, m = _plural(t.low), k + 2
            while m < n:
                while m < n and toks[m].low in (",", "and", "or", "&"):
                    m += 1
                if m < n and toks[m].kind == "num" and toks[m - 1].low in (",", "and", "or", "&"):
                    extras.append(f"{head} {toks[m].text}")
                    m += 1
                else:
                    break
    return " " + " ".join(parts) + " " + "".join(f"| {e} " for e in extras)
