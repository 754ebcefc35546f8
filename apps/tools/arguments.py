"""A tool's arguments taken from the customer's words, never invented (docs/architecture/tools.md).

Each property of the tool's input schema is filled by the first rule that applies to it:

    ToolSpec.from_request      the customer's own words (a ticket's description)
    free_text_fields           free text (a ticket's subject): the model may write it, mostly in the
                               customer's words (half of its own at least); otherwise their first sentence
    enum                       the one enum value the words name
    known values               the one value whose code or name the words name (plan codes and names,
                               read through the company's business system for this customer)
    pattern                    the one identifier-like token (letters and digits, or 5+ digits) that
                               matches the property's pattern and length: an order number
    anything else              no rule: the model may copy it from the words

A required property the words leave open stays missing. Whether the model may be asked for it is
`model_may_fill`: only free text, a property without a rule, or a choice between several candidates the
words hold; a value the words could hold but do not (no order number given) is asked of the customer
instead, since no model can find it. A model's value is accepted only where `model_value_accepted` says so:
SmolLM2-135M, forced to write a ticket's subject for "I have had no signal at home since Monday", wrote
"I'm sorry, but I am unable to assist you with your order." (bench/tool_choice.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from apps.tools.registry import KnownValue, ToolSpec

_TOKEN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?")
_ALNUM = re.compile(r"[^a-z0-9]+")
# A single word of a name ("unlimited" for "Unlimited Max") names the value only where it reads as one:
# "the unlimited plan", "to unlimited", "onto essential." — not "I want to talk to someone".
_PLAN_NOUN = r"(?:plan|tariff|package|bundle|subscription|one|option)"
_END = r"(?:$|[.,!?;:]|\s+(?:please|instead|now|from|today|thanks)\b)"


@dataclass(frozen=True)
class Field:
    name: str
    required: bool
    rule: str  # "request", "free" (free text), "enum", "known", "pattern", "words" (no rule)
    candidates: tuple[str, ...] = ()  # what the words hold for it (several: ambiguous)
    fallback: str | None = None  # free text: the customer's first sentence, when the model's will not do


@dataclass
class Filled:
    arguments: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, Field] = field(default_factory=dict)

    @property
    def missing(self) -> list[str]:
        return [f.name for f in self.fields.values() if f.required and f.name not in self.arguments]


def _schema_properties(spec: ToolSpec) -> tuple[dict[str, dict[str, Any]], set[str]]:
    schema = spec.input_model.model_json_schema()
    return dict(schema.get("properties", {})), set(schema.get("required", []))


def _normal(text: str) -> str:
    return _ALNUM.sub(" ", text.casefold()).strip()


# Words too common to show that a model's free text comes from the customer's.
_STOPWORDS = frozenset(
    "the and but for from with about into this that there here have has had been were was are can could "  # noqa: SIM905
    "would will should please not you your our its since just very any some all get got does did didn "
    "don doesn isn wasn won aren".split()
)


def _content_words(text: str) -> set[str]:
    """Content words, cut to five letters so "charge" is "charging"."""
    return {w[:5] for w in _normal(text).split() if len(w) >= 3 and w not in _STOPWORDS}


def _first_sentence(text: str, *, limit: int, minimum: int) -> str | None:
    lines = text.strip().splitlines()
    sentence = re.split(r"(?<=[.!?])\s", " ".join(lines[0].split()) if lines else "", maxsplit=1)[0]
    if len(sentence) > limit:
        sentence = sentence[:limit].rsplit(" ", 1)[0]
    sentence = sentence.rstrip(" ,;:")
    return sentence if len(sentence) >= minimum else None


def _find(phrase: str, text: str) -> int | None:
    """Where `phrase` starts as whole words of `text`, hyphens and spaces alike ("plus-20" is "Plus 20")."""
    words = _normal(phrase)
    if not words:
        return None
    found = re.search(rf"(?<![a-z0-9]){re.escape(words)}(?![a-z0-9])", _normal(text))
    return found.start() if found else None


def _word_names_value(word: str, text: str) -> int | None:
    normal = _normal(text)
    w = re.escape(word)
    found = re.search(rf"\b{w}\s+{_PLAN_NOUN}\b", normal) or re.search(
        rf"\b(?:the|to|onto|on)\s+{w}{_END}", text.casefold()
    )
    return normal.find(word) if found else None


def known_values_named(values: Sequence[KnownValue], text: str) -> list[str]:
    """The known values the words name, in order of mention. A value right after "from" ("from Plus 20 GB
    to Unlimited Max") is where the customer is, not where they go: left out when another is named."""
    owners: dict[str, set[str]] = {}
    for value in values:
        for name in value.names:
            words = _normal(name).split()
            if words and words[0].isalpha() and len(words[0]) >= 3:
                owners.setdefault(words[0], set()).add(value.value)
    normal = _normal(text)
    named: list[tuple[int, str]] = []
    for value in values:
        # "Plus 20 GB" is also said "Plus 20".
        aliases = [
            value.value,
            *value.names,
            *(re.sub(r"\s*\d+\s*gb$", "", n, flags=re.I) for n in value.names),
        ]
        places = [p for p in (_find(a, text) for a in aliases if len(_normal(a)) >= 3) if p is not None]
        for name in value.names:
            words = _normal(name).split()
            if words and owners.get(words[0]) == {value.value}:
                place = _word_names_value(words[0], text)
                if place is not None:
                    places.append(place)
        if places:
            named.append((min(places), value.value))
    named.sort()
    going = [v for place, v in named if normal[:place].split()[-2:].count("from") == 0]
    chosen = going if len(named) > 1 and going else [v for _, v in named]
    return list(dict.fromkeys(chosen))


def _identifiers(prop: dict[str, Any], text: str) -> list[str]:
    pattern = prop.get("pattern")
    low, high = int(prop.get("minLength", 1)), int(prop.get("maxLength", 10_000))
    found: list[str] = []
    for token in _TOKEN.findall(text):
        if not low <= len(token) <= high or not any(c.isdigit() for c in token):
            continue
        if not (any(c.isalpha() for c in token) or len(token) >= 5):
            continue  # "20" in "Plus 20 GB", a year, an amount: not an identifier
        if pattern and re.fullmatch(pattern, token) is None:
            continue
        if token.casefold() not in (f.casefold() for f in found):
            found.append(token)
    return found


def arguments_from_words(
    spec: ToolSpec, *, text: str, known: Mapping[str, Sequence[KnownValue]] | None = None
) -> Filled:
    properties, required = _schema_properties(spec)
    known = known or {}
    filled = Filled()
    for name, prop in properties.items():
        is_required = name in required
        rule: str
        candidates: tuple[str, ...]
        if name in spec.from_request:
            limit = int(prop.get("maxLength", 2000))
            words = text.strip()
            if len(words) > limit:
                words = words[:limit].rsplit(" ", 1)[0]
            filled.fields[name] = Field(name, is_required, "request", (words,))
            if len(words) >= int(prop.get("minLength", 1)):
                filled.arguments[name] = words
            continue
        if name in spec.free_text_fields:
            limit, minimum = int(prop.get("maxLength", 200)), int(prop.get("minLength", 1))
            fallback = _first_sentence(text, limit=limit, minimum=minimum)
            filled.fields[name] = Field(name, is_required, "free", (), fallback)
            continue
        elif "enum" in prop:
            hits = [str(v) for v in prop["enum"] if _find(str(v), text) is not None]
            rule, candidates = "enum", tuple(hits)
        elif name in known:
            rule, candidates = "known", tuple(known_values_named(known[name], text))
        elif "pattern" in prop:
            rule, candidates = "pattern", tuple(_identifiers(prop, text))
        else:
            rule, candidates = "words", ()
        filled.fields[name] = Field(name, is_required, rule, candidates)
        if len(candidates) == 1:
            filled.arguments[name] = candidates[0]
    return filled


def model_may_fill(item: Field) -> bool:
    """Whether asking the model can fill this property: it writes free text, picks among several
    candidates the words hold, and copies a value no rule describes. Where a rule finds nothing in the
    words (no order number given), a model could only invent one."""
    return item.rule in ("free", "words") or len(item.candidates) > 1


def model_value_accepted(item: Field, value: Any, *, text: str) -> bool:
    """A model's value for a property: free text mostly in the customer's words (the schema still checks
    it); one of the candidates; or, for a property without a rule, words the customer wrote."""
    if not isinstance(value, str) or not value.strip():
        return False
    if item.rule == "free":
        # At least half its words are the customer's: "Phone does not charge" for "My phone stopped
        # charging", not SmolLM2's "The customer didn't create a ticket, please try again later." for
        # "Please create a ticket, my SIM isn't recognised".
        own = _content_words(value)
        return bool(own) and 2 * len(own & _content_words(text)) >= len(own)
    if item.rule == "words":
        return _find(value, text) is not None
    return value.casefold() in (c.casefold() for c in item.candidates)
