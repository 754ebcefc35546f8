"""Quantities: numbers and number words, money with its rate, percentages, durations, data sizes, times,
weekdays, months, dates, ordinals and rates without a number; parsed from tokens and compared."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .tokens import _initial, _Tok

_ONE_TO_NINETEEN = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
)  # fmt: skip
_FIRST_TO_TWENTIETH = (
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
    "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth", "eighteenth",
    "nineteenth", "twentieth",
)  # fmt: skip
_ONES = {w: n for n, w in enumerate(_ONE_TO_NINETEEN)}
_TENS = {
    w: 10 * n
    for n, w in enumerate(("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"), 2)
}
_ORDINALS = {w: n for n, w in enumerate(_FIRST_TO_TWENTIETH, 1)}
_CURRENCY_SYMBOLS = {"€": "eur", "£": "gbp", "$": "usd"}
_CURRENCY_CODES = {"eur": "eur", "gbp": "gbp", "usd": "usd"}
_CURRENCY_WORDS = {
    **_CURRENCY_CODES,
    "euro": "eur", "euros": "eur", "pound": "gbp", "pounds": "gbp", "dollar": "usd", "dollars": "usd",
}  # fmt: skip
_SUBUNITS = {"cent": "eur", "cents": "eur", "pence": "gbp"}
_SECOND, _MINUTE, _HOUR, _DAY = 1, 60, 3600, 86400
_DURATION_UNITS: dict[str, tuple[str, str, int]] = {}  # word: (unit name, base, factor)
for _names_, _unit, _base, _factor in (
    ("second seconds sec secs", "second", "s", _SECOND),
    ("minute minutes min mins", "minute", "s", _MINUTE),
    ("hour hours hr hrs", "hour", "s", _HOUR),
    ("day days", "day", "s", _DAY),
    ("week weeks", "week", "s", 7 * _DAY),
    ("month months", "month", "mo", 1),
    ("year years yr yrs", "year", "mo", 12),
):
    for _w in _names_.split():
        _DURATION_UNITS[_w] = (_unit, _base, _factor)
_DATA_UNITS = {
    "kb": "kb", "mb": "mb", "gb": "gb", "tb": "tb", "kilobyte": "kb", "kilobytes": "kb", "megabyte": "mb",
    "megabytes": "mb", "gigabyte": "gb", "gigabytes": "gb", "terabyte": "tb", "terabytes": "tb",
    "mbps": "mbps", "gbps": "gbps",
}  # fmt: skip
_RATE_UNITS = {**{w: u for w, (u, _b, _f) in _DURATION_UNITS.items()}, **_DATA_UNITS}
_RATE_ADVERBS = {"hourly": "hour", "daily": "day", "weekly": "week", "monthly": "month", "yearly": "year",
                 "annually": "year"}  # fmt: skip
_DURATION_QUALIFIERS = frozenset({"full", "whole", "complete", "clear", "consecutive", "calendar"})
_WORKING = frozenset({"working", "business"})
# "for a year", "within an hour": a duration of one; "€6 a day", "three times a year" are rates.
_DURATION_PREPOSITIONS = frozenset(
    {"for", "within", "after", "in", "over", "to", "than", "about", "around", "takes", "take", "lasts",
     "last", "least", "most", "up"}
)  # fmt: skip
_WEEKDAYS = frozenset(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))
_MONTHS = frozenset(
    "january february march april may june july august september october november december".split()  # noqa: SIM905
)


# Time units said without a number ("for the rest of the year") must be units the evidence speaks of.
_UNIT_WORDS = {
    w: u
    for w, (u, _b, _f) in _DURATION_UNITS.items()
    if u in ("minute", "hour", "day", "week", "month", "year") and len(w) > 3
}


@dataclass(frozen=True, slots=True)
class _Qty:
    kind: str  # money, percent, duration, measure, time, date, weekday, month, ordinal, number
    key: tuple[object, ...]
    value: float | None
    raw: str
    first: int  # token indexes, inclusive
    last: int


def _compatible(claim: _Qty, fact: _Qty) -> bool:
    """Does `fact` (from the evidence or the question) support `claim` (from the sentence)?"""
    if claim.kind == "number":  # a bare number: "three times", "text PAC to 65075", "Zones 2 and 3"
        return fact.kind in ("number", "ordinal") and fact.value == claim.value
    if claim.kind == "every":  # "every month", "per day": a rate the evidence states, with or without a price
        return (fact.kind == "every" and fact.key == claim.key) or (
            fact.kind == "money" and fact.key[2] == claim.key[0]
        )
    if claim.kind != fact.kind:
        return False
    if claim.kind == "money":  # (amount, currency, rate): a sentence may leave the rate out
        return claim.key[:2] == fact.key[:2] and (claim.key[2] is None or claim.key[2] == fact.key[2])
    if claim.kind == "duration":  # (amount in base units, base, working days)
        return claim.key[:2] == fact.key[:2] and (not claim.key[2] or bool(fact.key[2]))
    return claim.key == fact.key


def _rival(claim: _Qty, fact: _Qty) -> bool:
    """Is `fact` the same sort of quantity as `claim` with another value (€6 per day against €12 per day)?"""
    if claim.kind != fact.kind or claim.kind in ("weekday", "month", "date") or _compatible(claim, fact):
        return False
    if claim.kind == "money":
        return claim.key[1] == fact.key[1] and claim.key[2] == fact.key[2]
    if claim.kind in ("duration", "measure"):
        return claim.key[1] == fact.key[1]
    return True


def _month_at(toks: Sequence[_Tok], k: int) -> str | None:
    if k >= len(toks) or toks[k].kind != "word" or toks[k].low not in _MONTHS:
        return None
    text = toks[k].text
    if not text[0].isupper():
        return None  # "march" the verb
    if toks[k].low == "may" and _initial(toks, k) and not (k + 1 < len(toks) and toks[k + 1].kind == "num"):
        return None  # "May I ..."
    return toks[k].low


_ONE_BEFORE = frozenset(
    {"a", "the", "any", "each", "every", "no", "this", "that", "which", "new", "another", "only", "last",
     "right", "same", "old", "spare"}
)  # fmt: skip


def _one_is_pronoun(toks: Sequence[_Tok], i: int) -> bool:
    before = toks[i - 1].low if i > 0 else ""
    after = toks[i + 1].low if i + 1 < len(toks) else ""
    return before in _ONE_BEFORE or after in ("of", "another")


def _every_at(toks: Sequence[_Tok], i: int) -> tuple[str, int] | None:
    """ "every month", "per day", "three times a year" (a rate with no number of its own): (unit, end)."""
    n, low = len(toks), toks[i].low
    if low in ("a", "an"):
        if i == 0 or toks[i - 1].low not in ("times", "once", "twice"):
            return None
    elif low not in ("every", "each", "per", "/"):
        return None
    k = i + 1
    while k < n and (toks[k].low in _DURATION_QUALIFIERS or toks[k].low in _WORKING):
        k += 1
    if k < n and toks[k].low in _RATE_UNITS:
        return _RATE_UNITS[toks[k].low], k + 1
    return None


def _parse_number(toks: Sequence[_Tok], i: int) -> tuple[float, int] | None:
    n = len(toks)
    t = toks[i]
    if t.kind == "num":
        return t.num, i + 1
    if t.kind != "word":
        return None
    low = t.low
    if low in ("a", "an") and i + 1 < n and toks[i + 1].low == "dozen":
        return 12.0, i + 2
    if low == "dozen":
        return 12.0, i + 1
    if low in _TENS:
        value, j = _TENS[low], i + 1
        if j + 1 < n and toks[j].low == "-" and 0 < _ONES.get(toks[j + 1].low, 0) < 10:
            value, j = value + _ONES[toks[j + 1].low], j + 2
        elif j < n and 0 < _ONES.get(toks[j].low, 0) < 10:
            value, j = value + _ONES[toks[j].low], j + 1
        return float(value), j
    if low in _ONES:
        if low == "one" and _one_is_pronoun(toks, i):
            return None
        value, j = _ONES[low], i + 1
        if j < n and toks[j].low == "hundred":
            value, j = value * 100, j + 1
        return float(value), j
    return None


def _quantities(toks: Sequence[_Tok], text: str, skip: Iterable[int] = ()) -> list[_Qty]:
    skipped = set(skip)
    out: list[_Qty] = []
    n = len(toks)

    def make(kind: str, key: tuple[object, ...], value: float | None, i: int, j: int) -> _Qty:
        return _Qty(kind, key, value, text[toks[i].start : toks[j - 1].end], i, j - 1)

    i = 0
    while i < n:
        t = toks[i]
        q: _Qty | None = None
        if i in skipped:
            i += 1
            continue
        if (t.kind == "sym" and t.text in _CURRENCY_SYMBOLS) or (
            t.low in _CURRENCY_CODES and i + 1 < n and toks[i + 1].kind == "num"
        ):
            currency = _CURRENCY_SYMBOLS.get(t.text) or _CURRENCY_CODES[t.low]
            parsed = _parse_number(toks, i + 1) if i + 1 < n else None
            if parsed is not None:
                q = _money(toks, text, i, parsed[1], parsed[0], currency)
        elif t.kind == "time":
            hour, minute = (int(p) for p in t.text.split(":"))
            j = i + 1
            if j < n and toks[j].low in ("am", "pm"):
                hour, j = hour % 12 + (12 if toks[j].low == "pm" else 0), j + 1
            q = make("time", (hour, minute), None, i, j)
        elif t.kind == "ord" or (t.low in _ORDINALS and not (t.low == "first" and _initial(toks, i))):
            value = t.num if t.kind == "ord" else float(_ORDINALS[t.low])
            j = i + 1 + (i + 1 < n and toks[i + 1].low == "of")
            month = _month_at(toks, j)
            q = (
                make("date", (value, month), value, i, j + 1)
                if month
                else make("ordinal", (value,), value, i, i + 1)
            )
        elif t.low in _WEEKDAYS or (t.low.endswith("s") and t.low[:-1] in _WEEKDAYS):
            q = make("weekday", (t.low.rstrip("s") if t.low.endswith("days") else t.low,), None, i, i + 1)
        elif (month := _month_at(toks, i)) is not None:
            if i + 1 < n and toks[i + 1].kind in ("num", "ord") and toks[i + 1].num <= 31:
                q = make("date", (toks[i + 1].num, month), toks[i + 1].num, i, i + 2)
            else:
                q = make("month", (month,), None, i, i + 1)
        elif (every := _every_at(toks, i)) is not None:
            q = make("every", (every[0],), None, i, every[1])
        elif t.low in ("noon", "midday", "midnight"):
            q = make("time", (0 if t.low == "midnight" else 12, 0), None, i, i + 1)
        elif (
            t.low in ("a", "an")
            and i > 0
            and toks[i - 1].low in _DURATION_PREPOSITIONS
            and i + 1 < n
            and toks[i + 1].low in _DURATION_UNITS
        ):
            _unit, base, factor = _DURATION_UNITS[toks[i + 1].low]
            q = make("duration", (float(factor), base, False), 1.0, i, i + 2)
        else:
            parsed = _parse_number(toks, i)
            if parsed is not None:
                q = _after_number(toks, text, i, parsed[1], parsed[0])
        if q is None:
            i += 1
        else:
            out.append(q)
            i = q.last + 1
    return out


def _money(toks: Sequence[_Tok], text: str, i: int, j: int, amount: float, currency: str) -> _Qty:
    """A money amount from toks[i] to before toks[j], with the rate that may follow ("per day")."""
    n, rate, end = len(toks), None, j
    k = j
    if k < n and toks[k].low in _RATE_ADVERBS:
        rate, end = _RATE_ADVERBS[toks[k].low], k + 1
    else:
        if k < n and toks[k].low in ("per", "a", "an", "each", "every", "/"):
            k += 1
        elif k + 1 < n and toks[k].low == "for" and toks[k + 1].low in ("each", "every"):
            k += 2
        else:
            k = -1
        if k >= 0:
            while k < n and (toks[k].low in _DURATION_QUALIFIERS or toks[k].low in _WORKING):
                k += 1
            if k < n and toks[k].low in _RATE_UNITS:
                rate, end = _RATE_UNITS[toks[k].low], k + 1
    raw = text[toks[i].start : toks[end - 1].end]
    return _Qty("money", (round(amount, 2), currency, rate), round(amount, 2), raw, i, end - 1)


def _after_number(toks: Sequence[_Tok], text: str, i: int, j: int, value: float) -> _Qty:
    n = len(toks)

    def make(kind: str, key: tuple[object, ...], end: int, val: float | None = value) -> _Qty:
        return _Qty(kind, key, val, text[toks[i].start : toks[end - 1].end], i, end - 1)

    if j >= n:
        return make("number", (value,), j)
    nxt = toks[j]
    if nxt.kind == "sym" and nxt.text in _CURRENCY_SYMBOLS:
        return _money(toks, text, i, j + 1, value, _CURRENCY_SYMBOLS[nxt.text])
    if nxt.low in _CURRENCY_WORDS:
        return _money(toks, text, i, j + 1, value, _CURRENCY_WORDS[nxt.low])
    if nxt.low in _SUBUNITS:
        return _money(toks, text, i, j + 1, value / 100, _SUBUNITS[nxt.low])
    if nxt.text == "%" or nxt.low == "percent":
        return make("percent", (value,), j + 1)
    if nxt.low == "per" and j + 1 < n and toks[j + 1].low == "cent":
        return make("percent", (value,), j + 2)
    if nxt.low in ("am", "pm") and value <= 12:
        hour = int(value) % 12 + (12 if nxt.low == "pm" else 0)
        return make("time", (hour, 0), j + 1, None)
    month = _month_at(toks, j + (nxt.low == "of"))
    if month and value <= 31:
        return make("date", (value, month), j + 1 + (nxt.low == "of"))
    k = j + (nxt.low == "-")
    working = False
    while k < n and (toks[k].low in _DURATION_QUALIFIERS or toks[k].low in _WORKING):
        working = working or toks[k].low in _WORKING
        k += 1
    if k < n and toks[k].low in _DURATION_UNITS:
        _unit, base, factor = _DURATION_UNITS[toks[k].low]
        return make("duration", (round(value * factor, 6), base, working), k + 1)
    k = j + (nxt.low == "-")
    if k < n and toks[k].low in _DATA_UNITS:
        return make("measure", (value, _DATA_UNITS[toks[k].low]), k + 1)
    return make("number", (value,), j)
