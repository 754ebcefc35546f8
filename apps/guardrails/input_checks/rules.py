"""Phrase rules: how they are written, compiled and matched.

A phrase rule is a head (literal words) and a tail (a pattern). Rules are compiled per first word of
their head: a pattern that starts with a literal is searched many times faster than one that starts with
an alternation, and it is only tried when that word is one of the message's words. So every rule must
start with a whole literal word (`_RuleBook.rule` checks), and a message costs roughly one search per rule
whose first word it contains.

Each reason family (override, reveal, persona, tools, exfiltration, abuse) writes its rules into its own
`_RuleBook`; `_compile_rules` groups all of them, in the order given, into one pattern per (first word,
reason, before).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

_TOKEN = re.compile(r"[a-z]+")

# "not_asking": not right after the customer asking about it ("should I ignore ...", "is it safe to ...");
# "not_own": not right after the customer asking about their own data ("how do I export all customer data");
# "speaker": right after someone saying they will do it ("I'm going to ...", "we will ...").
Before = Literal["anything", "not_asking", "not_own", "speaker"]


@dataclass(frozen=True)
class _Rule:
    reason: str
    pattern: re.Pattern[str]
    before: Before  # what the words before the match must (not) be
    needs: frozenset[str]  # tried only when one of these words is in the message too


class _RuleBook:
    """Phrase rules as written, grouped by (first word, reason, before)."""

    def __init__(self) -> None:
        self.written: dict[tuple[str, str, Before], list[tuple[str, frozenset[str]]]] = {}

    def rule(
        self, reason: str, heads: str, tail: str = r"\b", *, before: Before = "anything", needs: str = ""
    ) -> None:
        """`heads` and `needs` are "|"-separated literal phrases; `tail` follows each head."""
        required = frozenset(_TOKEN.findall(needs))
        for head in heads.split("|"):
            first = _TOKEN.match(head)
            if first is None or head[first.end() : first.end() + 1].isalpha():
                raise ValueError(f"a head must start with a whole literal word: {head!r}")
            rest = re.escape(head[first.end() :]) + tail
            self.written.setdefault((first.group(), reason, before), []).append((rest, required))


def _any(*alternatives: str) -> str:
    return "(?:" + "|".join(alternatives) + ")"


def _compile_rules(*books: _RuleBook) -> dict[str, list[_Rule]]:
    """One pattern per (first word, reason, before), the books' rules in the order given. A group needs one
    of its rules' words, or nothing if one of its rules needs nothing."""
    grouped: dict[tuple[str, str, Before], list[tuple[str, frozenset[str]]]] = {}
    for book in books:
        for key, rules in book.written.items():
            grouped.setdefault(key, []).extend(rules)
    by_word: dict[str, list[_Rule]] = {}
    for (word, reason, before), written in grouped.items():
        pattern = re.compile(re.escape(word) + _any(*(rest for rest, _ in written)))
        needs = frozenset().union(*(n for _, n in written)) if all(n for _, n in written) else frozenset()
        by_word.setdefault(word, []).append(_Rule(reason, pattern, before, needs))
    return by_word


# --- what the words before a match must (not) be

# "Should I ignore...", "we don't follow...", "is it safe to ignore...": the customer is asking about
# their own instructions, not giving the assistant one.
_ASKING = re.compile(
    r"(?:\b(?:i|we|they|you|he|she|agent|driver)|n't|\bnot|\bnever|\b(?:safe|ok|okay|fine|alright|how) to) $"
)
_OWN = re.compile(r"(?:\b(?:i|we|my|our)|\bhow to) $")
# "I'm going to ...", "we will ...": threats count only when someone says they will do it.
_MODAL = (
    "(?:will|am|are|shall|would|could|want to|wanna|gonna|going to|intend to|plan to|promise to"
    "|swear (?:to god )?(?:i'?ll|i will|we'?ll)|would love to|love to|come and|come over there and"
    "|come down there and|find you and|literally|actually|really|seriously|personally|just|fucking"
    r"|f\w*ing|definitely|totally|gladly|happily)"
)
_SPEAKER = re.compile(
    rf"(?:^|[^a-z0-9'])(?:i|we|i'?ll|ill|we'?ll|i'?m|im|we'?re|i'?d|we'?d)(?: {_MODAL}){{0,4}} $"
)


def _matches(rule: _Rule, words: str) -> bool:
    position = 0
    while (match := rule.pattern.search(words, position)) is not None:
        start = position = match.start()
        starts_a_word = start == 0 or not words[start - 1].isalnum()
        if starts_a_word and _fits_before(rule.before, words, start):
            return True
        position += 1
    return False


def _fits_before(before: Before, words: str, start: int) -> bool:
    if before == "not_asking":
        return _ASKING.search(words, max(0, start - 20), start) is None
    if before == "not_own":
        return _OWN.search(words, max(0, start - 20), start) is None
    if before == "speaker":
        return _SPEAKER.search(words, max(0, start - 120), start) is not None
    return True
