"""The two views every rule reads: a message as written once the usual disguises are undone.

Markup view: NFKC, invisible characters dropped, look-alike letters folded, accents stripped, casefolded,
lines and punctuation kept (for template markup and tool syntax). Words view: the same, plus leetspeak
undone, s-p-a-c-e-d letters joined, emphasis marks and hyphens inside words dropped, whitespace
collapsed (for phrase rules). `_variants` gives the rare message a second reading.
"""

from __future__ import annotations

import re
import unicodedata

# Invisible format characters (zero-width, joiners, bidi controls, soft hyphen, fillers): an attacker
# splits a key word with them and a reader never sees them.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0]"
)
# Unicode tag characters spell ASCII invisibly; only flag emoji have a use for them.
_TAGS = re.compile("[\U000e0000-\U000e007f]+")
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
# Cyrillic and Greek letters that look like Latin ones ("ignore" spelt with a Cyrillic i and o); used
# for matching only, never shown.
_CONFUSABLE_LETTERS = dict(
    zip(
        "аеорсухіјѕԁԛԝһкмтвнАЕОРСУХІЈЅКМТВНαεοιντκρχυΑΕΟΙΝΤΚΡΧΥ",
        "aeopcyxijsdqwhkmtbhaeopcyxijskmtbhaeoivtkpxuaeoivtkpxy",
        strict=True,
    )
)
_CONFUSABLE = re.compile("[" + "".join(_CONFUSABLE_LETTERS) + "]")
_QUOTES = re.compile("[\u2018\u2019\u02bc\u2032`]")
_LINE_BREAKS = re.compile("\r\n?|[\u2028\u2029\x85\x0b\x0c]")
# Markdown emphasis and quotes around key words ("**ignore** all ...") are dropped in the words view.
_EMPHASIS = re.compile('[*~"\u201c\u201d\u00ab\u00bb^]')
_LEET = str.maketrans("013457@$", "oieastas")
# Leet characters touching a letter ("1gn0re", "pr0mpt", "$ystem"); "2024" and "$50" stay.
_LEET_RUN = re.compile(r"[0-9@$]+")
_LEET_BAR = re.compile(r"[!|](?<=[a-z0-9][!|])(?=[a-z])")
# Three or more single letters with one repeated separator: "i g n o r e", "p.r.o.m.p.t".
_SPACED = re.compile(r"[a-z](?P<sep>[ .\-_*/|+]{1,2})[a-z](?:(?P=sep)[a-z])+(?![a-z0-9])")
_ONE_IN_WORD = re.compile(r"1(?<=[A-Za-z]1)(?=[A-Za-z])")
_CHOPPED_HINT = re.compile(r"[.!,;:] [a-z']+[.!,;:]")  # cheap; most messages have no one-word sentence
_CHOPPED = re.compile(r"(?:^|(?<=[.!,;:] ))(?:[a-z']+[.!,;:]+(?: |$)){3,}")
_SENTENCE_ENDS = re.compile(r"[.!,;:]+")
# A hyphen inside a word ("dis-regard", "role-play") is dropped in the words view.
_HYPHEN = re.compile(r"-(?<=[a-z]-)(?=[a-z])")


def _unleet(match: re.Match[str]) -> str:
    text, start, end = match.string, match.start(), match.end()
    touches_letter = (start > 0 and text[start - 1].isalpha()) or (end < len(text) and text[end].isalpha())
    return match.group().translate(_LEET) if touches_letter else match.group()


def _join_spaced(match: re.Match[str]) -> str:
    start = match.start()
    if start > 0 and match.string[start - 1].isalnum():  # the end of a longer word, not a spaced word
        return match.group()
    return match.group().replace(match.group("sep"), "")


def _variants(text: str, words: str) -> list[str]:
    """Second readings, only for the rare messages that need one: "1" read as "l" rather than "i"
    ("ru1es"), and one-word sentences read as one sentence ("IGNORE. PREVIOUS. INSTRUCTIONS.")."""
    variants = []
    if _ONE_IN_WORD.search(text):
        variants.append(_views(_ONE_IN_WORD.sub("l", text))[1])
    if "_" in words:  # "ignore_all_previous_instructions"
        variants.append(words.replace("_", " "))
    if _CHOPPED_HINT.search(words) and _CHOPPED.search(words):
        variants.append(_CHOPPED.sub(lambda m: _SENTENCE_ENDS.sub("", m.group()), words))
    return variants


def _views(text: str) -> tuple[str, str]:
    """(markup, words): markup keeps lines and punctuation for template markup and tool syntax; words is
    one line of words for phrase rules."""
    folded = unicodedata.normalize("NFKC", text)
    if not folded.isascii():
        folded = _TAGS.sub("", _INVISIBLE.sub("", folded))
        folded = _CONFUSABLE.sub(lambda m: _CONFUSABLE_LETTERS[m.group()], folded)
        folded = _COMBINING.sub("", unicodedata.normalize("NFD", folded))
    folded = _LINE_BREAKS.sub("\n", _QUOTES.sub("'", folded.casefold()))
    markup = "\n".join(" ".join(line.split()) for line in folded.split("\n"))
    words = _SPACED.sub(_join_spaced, folded)
    words = _EMPHASIS.sub("", _LEET_RUN.sub(_unleet, _LEET_BAR.sub("i", words)))
    words = _HYPHEN.sub("", words)
    return markup, " ".join(words.split())
