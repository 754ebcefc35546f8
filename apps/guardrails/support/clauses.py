"""Clauses and their polarity: a sentence cut into clauses, each with its content words, quantities,
negation (and the words it denies), "free" polarity and scope words."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .names import _capital, _hay
from .quantities import _Qty
from .tokens import _Tok
from .vocabulary import (
    _COST_STEM,
    _FREE_STEM,
    _IMPLICIT_NEGATIONS,
    _NEGATIONS,
    _NON_CONTENT,
    _SCOPE_WORDS,
    _STOPWORDS,
    _stem,
)

# "and you can ...", ", we credit ...": a new clause starts with its subject.
_SUBJECTS = frozenset({"you", "we", "it", "they", "there", "this", "your", "our", "i"})


# Negation-shaped phrases that negate nothing.
_NEUTRAL_RE = re.compile(
    r"\b(?:no|not) (?:later|more|less|fewer|earlier|longer) than\b|\bnot (?:only|just)\b|\bno matter\b"
    r"|\bwithout delay\b"
)
# Negation-shaped phrases that mean "free": they set the free polarity instead of the negation.
_FREE_RE = re.compile(
    r"\b(?:at |with |for )?no (?:extra |additional |further |added )?(?:cost|charge|fee)s?\b"
    r"|\bnothing (?:extra|more|additional)\b"
    r"|\bcosts? (?:you )?nothing(?: extra| more| additional)?\b"
    r"|\bwithout (?:any )?(?:extra |additional )?(?:cost|charge|fee)s?\b"
    r"|\bfree of charge\b"
    r"|(?:\bnot|n't|\bnever) (?:have to |need to |be )?"
    r"(?:cost|costs|charge|charges|charged|pay|paid|billed)\b(?: you)?(?: anything| extra| more)?"
    r"|\bno need to pay\b"
)


@dataclass(frozen=True, slots=True)
class _Seg:
    lo: int  # token range [lo, hi) in its sentence
    hi: int
    stems: frozenset[str]  # content words
    allstems: frozenset[str]  # every word, for antonyms
    hay: str
    qtys: tuple[_Qty, ...]
    neg: bool
    free: bool
    free_phrase: bool  # "free" said with a negation-shaped phrase: a "No," before it adds nothing
    all_free: bool  # every priced clause in it is free (a merged sentence may be free, then priced)
    targets: frozenset[str]  # the words the negations deny
    costy: bool  # speaks of a price
    scope: tuple[str, ...]  # narrowing and widening words (_SCOPE_GROUPS, _UNIVERSALS), repeats kept


def _polarity(words: list[str]) -> tuple[bool, bool, bool, frozenset[str], tuple[str, ...]]:
    joined, phrases = _FREE_RE.subn(" FREE ", _NEUTRAL_RE.sub(" ", " ".join(words)))
    tokens = joined.split()
    neg, targets = False, set()
    for k, w in enumerate(tokens):
        if w in _IMPLICIT_NEGATIONS:
            neg = True
        elif w in _NEGATIONS or w.endswith("n't"):
            neg = True
            for v in tokens[k + 1 : k + 5]:
                if v == "FREE" or v in _NEGATIONS or v.endswith("n't"):
                    break
                if v in _STOPWORDS or not v.isalpha():
                    continue
                targets.add(_stem(v))
                break
    free = phrases > 0 or "free" in tokens or "complimentary" in tokens
    return neg, free, phrases > 0, frozenset(targets), tuple(w for w in tokens if w in _SCOPE_WORDS)


def _segment_bounds(toks: Sequence[_Tok], qtys: Sequence[_Qty]) -> list[tuple[int, int]]:
    """Clauses: cut at ; and :, before but/however/whereas/although, ", and" and a new subject ("and you"),
    and before a list item that starts with a quantity or a name ("€6 per day in Zone 2 | €12 per day in
    Zone 3")."""
    starts = {q.first: q.kind for q in qtys}
    n, lo = len(toks), 0
    out: list[tuple[int, int]] = []
    for k, t in enumerate(toks):
        low, cut = t.low, False
        following = toks[k + 1].low if k + 1 < n else ""
        if (
            low in (";", ":")
            or (low in ("but", "however", "whereas", "although") and k > lo)
            or (low == "," and following in ("and", "but", "or", "so"))
            or (low in (",", "and", "or", "so") and following in _SUBJECTS)
        ):
            cut = True
        elif low in (",", "and", "or") and k + 1 < n:
            m = k + 1 + (low == "," and toks[k + 1].low in ("and", "or"))
            kind = starts.get(m) or ("name" if m < n and _capital(toks[m]) else None)
            cut = kind is not None and not (kind == "number" and k > 0 and toks[k - 1].kind == "num")
        if cut:
            if k > lo:
                out.append((lo, k))
            lo = k + 1
    if lo < n:
        out.append((lo, n))
    return out


def _segments(toks: Sequence[_Tok], qtys: Sequence[_Qty], *, with_hay: bool = True) -> list[_Seg]:
    segs: list[_Seg] = []
    for lo, hi in _segment_bounds(toks, qtys):
        part = toks[lo:hi]
        neg, free, free_phrase, targets, scope = _polarity(
            [t.low for t in part if t.kind in ("word", "num", "code", "ord", "time")]
        )
        stems = {
            _stem(t.low)
            for t in part
            if t.kind == "word" and len(t.low) > 1 and t.low not in _NON_CONTENT and not t.low.endswith("n't")
        }
        allstems = {_stem(t.low) for t in part if t.kind == "word"}
        if free:
            stems.add(_FREE_STEM)
            allstems.add(_FREE_STEM)
        seg_qtys = tuple(q for q in qtys if lo <= q.first < hi)
        costy = free or _COST_STEM in stems or any(q.kind == "money" for q in seg_qtys)
        segs.append(
            _Seg(
                lo,
                hi,
                frozenset(stems),
                frozenset(allstems),
                _hay(part) if with_hay else "",
                seg_qtys,
                neg,
                free,
                free_phrase,
                free,
                targets,
                costy,
                scope,
            )
        )
    return segs
