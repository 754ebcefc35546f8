"""The words of a question or a policy sentence that carry its meaning, for ranking evidence.

Content terms are lower-cased words minus stopwords and question words, with a light stem (plural s,
-ing, -ed) so "returns" meets "return". Qualified things are a word with the number or letter that names
it ("zone 3", "20 gb", "€12", "14 days"): two sentences about "Zone 2" and "Zone 3" share every word but
that one, and a question naming one must never be answered from the other.
"""

from __future__ import annotations

import re
from functools import lru_cache

_WORD = re.compile(r"[a-z0-9€£$%]+(?:[.,'][a-z0-9]+)*")
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "aren't",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "can't",
        "cannot",
        "could",
        "couldn't",
        "did",
        "didn't",
        "do",
        "does",
        "doesn't",
        "doing",
        "don't",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "hadn't",
        "has",
        "hasn't",
        "have",
        "haven't",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "i'd",
        "i'll",
        "i'm",
        "i've",
        "if",
        "in",
        "into",
        "is",
        "isn't",
        "it",
        "it's",
        "its",
        "itself",
        "let's",
        "me",
        "more",
        "most",
        "mustn't",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "ought",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "shouldn't",
        "so",
        "some",
        "such",
        "than",
        "that",
        "that's",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "there's",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "wasn't",
        "we",
        "were",
        "weren't",
        "what",
        "what's",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "won't",
        "would",
        "wouldn't",
        "you",
        "you'd",
        "you'll",
        "you're",
        "you've",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "also",
        "just",
        "get",
        "got",
        "please",
        "thanks",
        "thank",
        "hi",
        "hello",
        "tell",
        "know",
        "want",
        "need",
        "much",
        "many",
        "long",
        "like",
        "still",
        "ever",
        "anything",
        "something",
        "really",
        "us",
        "let",
        "yes",
        "okay",
        "ok",
    ]
)
# Words a question names its subject with, never its subject.
_QUESTION_ONLY = frozenset(
    ["does", "do", "did", "is", "are", "can", "could", "would", "will", "should", "may", "might"]
)

_NUMBER_WORDS = {
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
    "fourteen": "14",
    "fifteen": "15",
    "twenty": "20",
    "thirty": "30",
}
# A counted thing: "zone 3", "20 gb", "14 days", "3 months". The unit side is a word; the number a digit
# run (number words are turned into digits first).
_NAMED_NUMBER = re.compile(r"\b([a-z]{2,})\s+(\d+[a-z]?)\b")  # "zone 3"
_COUNTED = re.compile(r"\b(\d+(?:\.\d+)?)\s*-?\s*([a-z]{2,})\b")  # "20 gb", "14 days"
_MONEY = re.compile(r"([€£$])\s?(\d+(?:\.\d+)?)")  # "€12"
_UNIT_ALIASES = {
    "gigabyte": "gb",
    "gigabytes": "gb",
    "mb": "mb",
    "day": "days",
    "working": "days",
    "week": "weeks",
    "month": "months",
    "year": "years",
    "hour": "hours",
    "minute": "minutes",
    "euro": "€",
    "euros": "€",
}


@lru_cache(maxsize=4096)
def stem(word: str) -> str:
    if len(word) > 5 and word.endswith("ing"):
        return word[:-3]
    if len(word) > 4 and word.endswith("ied"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith("ed"):
        return word[:-2]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _numbers_as_digits(text: str) -> str:
    return re.sub(
        r"\b(" + "|".join(_NUMBER_WORDS) + r")\b", lambda m: _NUMBER_WORDS[m.group(1)], text.lower()
    )


def content_terms(text: str) -> list[str]:
    """The meaningful words of `text`, stemmed, in order (repeats kept)."""
    words = _WORD.findall(_numbers_as_digits(text))
    return [
        stem(w.strip(".,'")) for w in words if w not in STOPWORDS and w not in _QUESTION_ONLY and len(w) > 1
    ]


def qualified_things(text: str) -> set[tuple[str, str]]:
    """(kind, value) pairs: ("zone", "3"), ("gb", "20"), ("€", "12"), ("days", "14")."""
    found: set[tuple[str, str]] = set()
    lowered = _numbers_as_digits(text)
    for m in _NAMED_NUMBER.finditer(lowered):
        kind, value = m.group(1), m.group(2)
        if kind not in STOPWORDS:
            found.add((stem(kind), value))
    for m in _COUNTED.finditer(lowered):
        value, kind = m.group(1), _UNIT_ALIASES.get(m.group(2), m.group(2))
        if kind not in STOPWORDS:
            found.add((stem(kind) if kind.isalpha() else kind, _plain(value)))
    for m in _MONEY.finditer(lowered):
        found.add((m.group(1), _plain(m.group(2))))
    return found


def _plain(value: str) -> str:
    return value[:-3] if value.endswith(".00") else value
