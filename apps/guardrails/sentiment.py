"""Signals that a turn belongs with a person: the customer asks for one, is upset, or raises something
sensitive (bereavement, fraud, a vulnerable person, legal threats, a complaint to a regulator).

A lexicon detector, deterministic and offline like the input checks: a few word lists matched on the
casefolded, accent-stripped text, with negation ("not angry", "don't need a human") and a little
intensity (capitals, repeated !). `sentiment_score` gives the case file a number from -1 (very upset) to
+1 (pleased). docs/architecture/handoff.md lists what it misses.

The sensitive topics are a registry (`SENSITIVE_TOPICS`): each company chooses which of them hand a turn to
a person (Tenant.handoff_topics; all of them unless it opts out), because a topic that is sensitive for a
phone company (a lawsuit) is everyday business for another (a software-licence vendor).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from apps.guardrails.pii import RedactedText

_WORD = re.compile(r"[a-z']+")
_CLAUSE = re.compile(r"[,;:.!?\n]+|\b(?:but|though|although)\b")

_HUMAN_NOUNS = (
    r"(?:human|person|people|agent|representative|rep|operator|someone|somebody|anyone|anybody|real one|"
    r"staff|advisor|adviser|colleague|manager|supervisor|customer (?:service|support|care)|support team|"
    r"your team)"
)
_ARTICLES = r"(?:a |an |the |real |live |actual )*"
_HUMAN_REQUEST = [
    re.compile(p)
    for p in (
        rf"\b(?:talk|speak|chat|connect|transfer|put)\b[^.?!]{{0,30}}\b(?:to|with|me through to)\b"
        rf"[^.?!]{{0,20}}\b{_ARTICLES}{_HUMAN_NOUNS}\b",
        rf"\b(?:i (?:want|need|would like|'d like)|can i (?:get|have)|get me|give me|let me have)\b"
        rf"[^.?!]{{0,20}}\b{_ARTICLES}{_HUMAN_NOUNS}\b",
        r"\b(?:real|live|actual) (?:human|person|agent)\b",
        r"\bhuman (?:agent|being|please)\b",
        r"^\s*(?:agent|human|operator|representative)\s*[.!]*\s*$",
        r"\bare you a (?:bot|robot|machine)\b.*\b(?:human|person)\b",
        rf"\bis there (?:a |an )?(?:real |live |actual )?{_HUMAN_NOUNS}\b[^.?!]{{0,25}}\b(?:talk|speak|chat)",
        r"\b(?:call|ring|phone) me back\b|\bcall ?back\b",
    )
]
_NEGATED_REQUEST = re.compile(r"\b(?:don't|do not|no need to|not)\b[^.?!]{0,15}\b(?:talk|speak|need|want)\b")

_KIN = (
    r"(?:husband|wife|partner|mother|father|mum|mom|dad|son|daughter|brother|sister|grandmother|grandfather|"
    r"grandma|grandpa|gran|nan|aunt|uncle|friend|relative|parent|child)"
)
# Whole phrases, not single words: a phone or a battery "died", an airport "terminal", "Sue" from the shop
# and the food "court" are everyday support questions, not sensitive ones.
_SENSITIVE = {
    "bereavement": (
        rf"\b(?:passed away|death of|deceased|funeral|bereave\w*|widow\w*|lost my {_KIN}|"
        rf"{_KIN} (?:has |had |just |recently )?(?:died|passed)|(?:he|she) (?:has |just |recently )?died)\b"
    ),
    "fraud": (
        r"\b(?:fraud\w*|scam\w*|stolen|stole my|identity theft|hacked|"
        r"unauthori[sz]ed (?:charges?|payments?|purchases?|transactions?|sim|access)|sim swap\w*|"
        r"someone (?:used|took over|opened|accessed) my|in my name)\b"
    ),
    "vulnerability": (
        rf"\b(?:suicid\w*|kill myself|self[- ]harm|domestic (?:abuse|violence)|"
        rf"abusive (?:{_KIN}|relationship)|{_KIN} (?:is|was) (?:abusive|violent)|"
        r"terminally ill|terminal (?:illness|cancer|diagnosis)|cancer|"
        r"disabilit\w*|can't afford (?:food|to eat)|homeless)\b"
    ),
    "legal": (
        r"\b(?:lawyer|solicitor|attorney|sue (?:you|them|your|the company)|going to sue|will sue|suing|"
        r"lawsuit|legal action|(?:to|in) court|court (?:case|action|order)|ombudsman|regulator|"
        r"small claims)\b"
    ),
}


@dataclass(frozen=True)
class SensitiveTopic:
    """A built-in sensitive topic. Companies choose which ones hand a turn to a person
    (Tenant.handoff_topics stores the keys); the label and description are what their settings page shows."""

    key: str
    label: str
    description: str
    pattern: re.Pattern[str]


_ABOUT = {
    "bereavement": (
        "Bereavement",
        "A customer's partner or relative has died: closing or taking over their account, funerals.",
    ),
    "fraud": (
        "Fraud and stolen accounts",
        "Scams, unauthorised charges, SIM swaps, hacked accounts, identity theft, a stolen phone.",
    ),
    "vulnerability": (
        "Vulnerable customers",
        "Self-harm, domestic abuse, serious illness, disability, not affording food or a home.",
    ),
    "legal": (
        "Legal threats",
        "Lawyers, lawsuits, court action, small claims, complaints to an ombudsman or a regulator.",
    ),
}
# In the order `sensitive_topic` checks them: the first match names the handoff.
SENSITIVE_TOPICS: tuple[SensitiveTopic, ...] = tuple(
    SensitiveTopic(key=key, label=_ABOUT[key][0], description=_ABOUT[key][1], pattern=re.compile(pattern))
    for key, pattern in _SENSITIVE.items()
)
SENSITIVE_TOPIC_KEYS = frozenset(topic.key for topic in SENSITIVE_TOPICS)

_NEGATIVE = {
    # word: weight (how strongly it signals an upset customer)
    "angry": 2,
    "furious": 3,
    "livid": 3,
    "outraged": 3,
    "fuming": 3,
    "disgusted": 3,
    "disgraceful": 3,
    "disgrace": 3,
    "ridiculous": 2,
    "unacceptable": 3,
    "appalling": 3,
    "terrible": 2,
    "awful": 2,
    "horrible": 2,
    "worst": 2,
    "useless": 2,
    "pathetic": 3,
    "incompetent": 3,
    "joke": 1,
    "scam": 2,
    "sick": 1,
    "fed": 1,
    "annoyed": 2,
    "frustrated": 2,
    "frustrating": 2,
    "upset": 2,
    "hate": 2,
    "rubbish": 2,
    "shocking": 2,
    "nightmare": 2,
    "cancel": 1,
    "complaint": 2,
    "complain": 2,
    "lied": 2,
    "lying": 2,
    "liars": 3,
    "never": 1,
    "again": 1,
    "still": 1,
    "waste": 2,
    "wasted": 2,
    "wasting": 2,
    "disappointed": 2,
    "disappointing": 2,
    "stupid": 2,
    "idiots": 3,
    "idiotic": 3,
    "crap": 2,
    "damn": 2,
    "hell": 1,
    "wtf": 3,
    "fuck": 3,
    "fucking": 3,
    "shit": 3,
    "bullshit": 3,
    "poor": 1,
    "bad": 1,
    "broken": 1,
    "wrong": 1,
}
_POSITIVE = {
    "thanks": 2,
    "thank": 2,
    "great": 2,
    "perfect": 2,
    "helpful": 2,
    "excellent": 3,
    "love": 2,
    "happy": 2,
    "brilliant": 3,
    "awesome": 3,
    "good": 1,
    "nice": 1,
    "appreciate": 2,
    "resolved": 1,
}
_NEGATORS = {"not", "no", "never", "don't", "isn't", "wasn't", "aren't", "didn't", "nothing"}
_ANGRY_PHRASES = re.compile(
    r"\b(?:(?:third|fourth|fifth|\d+(?:st|nd|rd|th)) time|how many times|sick (?:and tired )?of|fed up|"
    r"had enough|this is (?:a )?(?:joke|ridiculous|unacceptable|outrageous)|"
    r"i want (?:to cancel|my money back) (?:now|immediately|today)|worst (?:service|company|experience)|"
    r"wasting my time)\b"
)


@dataclass(frozen=True)
class Mood:
    score: float  # -1 very upset .. +1 pleased
    angry: bool
    signals: tuple[str, ...]  # the words and phrases behind the verdict, for the case file


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return text.casefold().replace("\u2019", "'")


def human_requested(text: RedactedText | str) -> bool:
    """The customer asks, in words, to talk to a person."""
    folded = _fold(text)
    for sentence in re.split(r"[.?!\n]+", folded):
        if _NEGATED_REQUEST.search(sentence) and not re.search(
            r"\bnot (?:a |an |the )?(?:bot|robot|machine)\b", sentence
        ):
            continue
        if any(p.search(sentence) for p in _HUMAN_REQUEST):
            return True
    return False


def sensitive_topic(text: RedactedText | str, enabled: Iterable[str] | None = None) -> str | None:
    """The key of the first sensitive topic the text raises among `enabled` (a company's
    Tenant.handoff_topics; None means every built-in topic), or None. Unknown keys are ignored."""
    wanted = SENSITIVE_TOPIC_KEYS if enabled is None else frozenset(enabled)
    if not wanted:
        return None
    folded = _fold(text)
    for topic in SENSITIVE_TOPICS:
        if topic.key in wanted and topic.pattern.search(folded):
            return topic.key
    return None


def mood(text: RedactedText | str) -> Mood:
    """How the customer sounds, from a lexicon with negation and intensity."""
    folded = _fold(text)
    words = _WORD.findall(folded)
    total = 0.0
    signals: list[str] = []
    # A negation reaches three words back within its own clause: "not angry", but "not a problem, thanks".
    for clause in _CLAUSE.split(folded):
        clause_words = _WORD.findall(clause)
        for i, word in enumerate(clause_words):
            weight: float = (_NEGATIVE.get(word, 0) and -_NEGATIVE[word]) or _POSITIVE.get(word, 0)
            if not weight:
                continue
            if any(w in _NEGATORS for w in clause_words[max(0, i - 3) : i]):
                weight = -weight / 2
            total += weight
            if weight < 0:
                signals.append(word)
    phrases = [m.group(0) for m in _ANGRY_PHRASES.finditer(folded)]
    total -= 3 * len(phrases)
    signals.extend(phrases)
    letters = [c for c in str(text) if c.isalpha()]
    shouting = len(letters) >= 12 and sum(c.isupper() for c in letters) / len(letters) > 0.7
    exclaims = str(text).count("!") >= 3
    if shouting:
        total -= 2
        signals.append("capitals")
    if exclaims:
        total -= 1
        signals.append("!!!")
    scale = max(4.0, len(words) / 3)
    score = max(-1.0, min(1.0, total / scale))
    angry = score <= -0.5 or (bool(phrases) and score < 0) or (shouting and total < -2)
    return Mood(score=round(score, 2), angry=angry, signals=tuple(dict.fromkeys(signals)))
