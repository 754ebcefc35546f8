"""What is worth remembering in a customer's message: a deterministic, sentence-level extractor.

Only the customer's own redacted words go in, and only first-person statements about themselves come out:
the plan they are on, their device, the language they speak, how and when they like to be contacted, a
stated preference. Questions ("Am I on the Unlimited plan?", "Can you email me?"), hedged or embedded ones
("I'm not sure if I'm on ..."), and messages the input checks refuse (an injection planted as a
"preference" would otherwise reach every later prompt) give nothing.

Why patterns and not the model: the same sentence must always give the same fact (a customer reading
"What we remember" must be able to predict it), it costs microseconds on the message path, and a model
asked to "summarise the customer" invents and generalises. Health, beliefs and other special categories
have no pattern on purpose: they are never remembered.

Each fact keeps the clause it came from (the customer's words, cut at ", and, but ..." around the match)
and names a slot when it is about a known thing, so a newer statement on the same thing replaces the
older one ("I'm on the Basic plan" after "I'm on the Unlimited plan").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from apps.guardrails.input_checks import input_check
from apps.guardrails.pii import RedactedText

FACTS_PER_MESSAGE = 3
TEXT_MAX = 200

_LANGUAGES = (
    r"(?:english|french|german|spanish|italian|portuguese|dutch|polish|arabic|turkish|russian|ukrainian"
    r"|chinese|mandarin|cantonese|japanese|korean|hindi|urdu|bengali|swedish|danish|norwegian|finnish"
    r"|greek|romanian|hungarian|czech|slovak|vietnamese|thai|tagalog|hebrew|persian|farsi|catalan"
    r"|croatian|serbian|bulgarian|welsh|irish)"
)
_TIMES = (
    r"(?:mornings?|afternoons?|evenings?|nights?|weekends?|weekdays?|lunch ?time|office hours"
    r"|mondays?|tuesdays?|wednesdays?|thursdays?|fridays?|saturdays?|sundays?"
    r"|\d{1,2}(?::\d\d)?\s*(?:am|pm|h)?(?:\s*(?:and|-|to)\s*\d{1,2}(?::\d\d)?\s*(?:am|pm|h)?)?)"
)
_CHANNELS = (
    r"(?:e-?mails?|phone calls?|phone|calls?|text messages?|texts?|sms|whatsapp|live chat|chat|post|letters?"
    r"|mail)"
)
_PLAN_WORDS = r"(?:plan|tariff|package|contract|bundle|subscription)"
_DEVICE_WORDS = r"(?:phone|device|handset|mobile|smartphone|tablet|laptop|router|modem|watch)"
_BRANDS = (
    r"(?:iphone|ipad|samsung|galaxy|pixel|android|huawei|xiaomi|oneplus|nokia|motorola|sony|oppo|macbook"
    r"|fairphone)"
)
_IM = r"(?:i'm|i am)"
# A word of a plan's or a device's name: not a joint that would carry the pattern into the next clause.
_NAME_WORD = r"(?!(?:and|but|or|my|your|because|so)\b)[\w<>+'-]+"
_ID = r"(?:i'd|i would)"

# (kind, slot, pattern). The first rule that matches a sentence names its fact.
_RULES: tuple[tuple[str, str, str], ...] = (
    ("preference", "language", rf"\bi\s+(?:only\s+|mostly\s+|mainly\s+)?speak\s+(?:only\s+)?{_LANGUAGES}\b"),
    (
        "preference",
        "language",
        r"\bmy\s+(?:native|first|mother|preferred|main)\s+(?:language|tongue)\s+is\s+\w",
    ),
    (
        "preference",
        "language",
        rf"\b(?:i\s+|{_ID}\s+)(?:prefer|rather|like)\b[^.;]{{0,30}}?\bin\s+{_LANGUAGES}\b",
    ),
    (
        "preference",
        "language",
        rf"\b(?:please\s+(?:\w+\s+)?(?:answer|reply|respond|write|talk|speak)(?:\s+to\s+me)?"
        rf"|(?:answer|reply|respond|write|talk|speak)\s+to\s+me)\s+in\s+{_LANGUAGES}\b",
    ),
    (
        "preference",
        "contact_time",
        rf"\b(?:call|contact|reach|phone|ring|text)\s+me\s+(?:only\s+)?(?:in|on|at|during|after|before|between"
        rf"|over)\s+(?:the\s+)?{_TIMES}",
    ),
    (
        "preference",
        "contact_time",
        rf"\b{_IM}\s+(?:only\s+|usually\s+|best\s+|mostly\s+)?(?:available|reachable|free|at home)"
        rf"\s+(?:in|on|at|during|after|before|between|over)\s+(?:the\s+)?{_TIMES}",
    ),
    (
        "preference",
        "contact_time",
        rf"\b(?:don't|do not|never)\s+(?:call|contact|phone|ring)\s+me"
        rf"\s+(?:in|on|at|during|after|before|over)\s+(?:the\s+)?{_TIMES}",
    ),
    (
        "preference",
        "contact_channel",
        rf"\b(?:i|{_ID})\s+(?:much\s+|really\s+)?(?:prefer|rather)\b[^.;]{{0,40}}?\b{_CHANNELS}\b",
    ),
    (
        "preference",
        "contact_channel",
        rf"\b(?:contact|reach)\s+me\s+(?:only\s+)?(?:by|via|through|over|on)\s+{_CHANNELS}\b",
    ),
    ("preference", "contact_channel", rf"\b{_CHANNELS}\s+(?:is|works)\s+(?:best|better)\s+for\s+me\b"),
    (
        "fact",
        "plan",
        rf"\b(?:{_IM}|we're|we are)\s+(?:currently\s+|now\s+|still\s+)?"
        rf"(?:on|subscribed to|signed up (?:to|for))\s+(?:the\s+|a\s+|an\s+|your\s+)?"
        rf"{_NAME_WORD}(?:\s+{_NAME_WORD}){{0,3}}?\s+{_PLAN_WORDS}\b",
    ),
    ("fact", "plan", rf"\bmy\s+(?:current\s+|mobile\s+|phone\s+)?{_PLAN_WORDS}\s+is\s+(?:the\s+)?\w"),
    (
        "fact",
        "plan",
        rf"\bi\s+(?:have|use|pay for|got)\s+(?:the|a|an)\s+"
        rf"{_NAME_WORD}(?:\s+{_NAME_WORD}){{0,3}}?\s+{_PLAN_WORDS}\b",
    ),
    (
        "fact",
        "device",
        rf"\bmy\s+(?:new\s+|current\s+|old\s+)?{_DEVICE_WORDS}\s+is\s+(?:an?\s+|the\s+)?\w",
    ),
    ("fact", "device", rf"\bi\s+(?:have|use|own|got|bought)\s+(?:an?\s+|the\s+)?(?:new\s+)?{_BRANDS}\b"),
    ("fact", "device", rf"\b{_IM}\s+(?:using|on)\s+(?:an?\s+)?{_BRANDS}\b"),
    (
        "fact",
        "customer_type",
        rf"\b{_IM}\s+an?\s+(?:business|prepaid|pay[- ]as[- ]you[- ]go|postpaid|student|corporate"
        r"|long[- ]time)\s+(?:customer|user|subscriber|client)\b",
    ),
    (
        "preference",
        "",
        rf"\b(?:i|{_ID})\s+(?:much\s+|really\s+|always\s+|usually\s+)?(?:prefer|rather)\b\s+\w",
    ),
)
_COMPILED = tuple((kind, slot, re.compile(pattern, re.IGNORECASE)) for kind, slot, pattern in _RULES)

# A sentence that asks, wonders or supposes states nothing.
_QUESTION_START = re.compile(
    r"^(?:what|how|why|when|where|which|who|whom|whose|can|could|do|does|did|is|are|was|were|will|would|"
    r"should|shall|may|might|have|has|am|if|whether|unless|suppose|in case)\b",
    re.IGNORECASE,
)
_HEDGE = re.compile(
    r"\b(?:if|whether|wonder(?:ing)?|not sure|unsure|don't know|do not know|no idea|think|maybe|perhaps)\b",
    re.IGNORECASE,
)
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")
_CLAUSE_EDGE = re.compile(r"[,;:]|\s(?:and|but|so|because|though|although|as|since)\s", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
_KEY_JUNK = re.compile(r"[^a-z0-9<>]+")
_LEAD = re.compile(
    r"^(?:hi|hello|hey|ok|okay|well|also|btw|so|and|but|yes|no|thanks)\b[\s,!-]*", re.IGNORECASE
)


@dataclass(frozen=True)
class Extracted:
    kind: str  # "fact" | "preference"
    slot: str  # what it is about, or "" for a free preference
    text: RedactedText  # the customer's clause, redacted, at most TEXT_MAX characters

    @property
    def key(self) -> str:
        """What makes two statements the same thing to remember."""
        if self.slot:
            return f"slot:{self.slot}"
        return "text:" + _KEY_JUNK.sub(" ", self.text.lower()).strip()[: TEXT_MAX - 5]


def facts_extract(text: RedactedText) -> list[Extracted]:
    """At most FACTS_PER_MESSAGE statements from one redacted customer message, one per slot, in the
    order said."""
    if not text.strip() or not input_check(text).allowed:
        return []
    found: list[Extracted] = []
    keys: set[str] = set()
    for sentence in _sentences(text):
        fact = _fact_of(sentence)
        if fact is None or fact.key in keys:
            continue
        keys.add(fact.key)
        found.append(fact)
        if len(found) == FACTS_PER_MESSAGE:
            break
    return found


def _sentences(text: str) -> list[str]:
    normal = text.replace("\u2019", "'").replace("\u2018", "'")
    return [s.strip() for s in _SENTENCES.split(normal) if s.strip()]


def _fact_of(sentence: str) -> Extracted | None:
    if "?" in sentence or _QUESTION_START.match(_LEAD.sub("", sentence)):
        return None
    for kind, slot, pattern in _COMPILED:
        match = pattern.search(sentence)
        if match is None:
            continue
        if _HEDGE.search(sentence[: match.start()]):
            return None  # "I'm not sure if I'm on the Unlimited plan"
        clause = _clause(sentence, match.start(), match.end())
        if not clause:
            return None
        return Extracted(kind=kind, slot=slot, text=RedactedText.stored(clause))
    return None


def _clause(sentence: str, start: int, end: int) -> str:
    """The part of the sentence the statement is in: from the last clause edge before the match to the
    first one after it, without a greeting in front or punctuation at the end."""
    begin = 0
    for edge in _CLAUSE_EDGE.finditer(sentence, 0, start):
        begin = edge.end()
    after = _CLAUSE_EDGE.search(sentence, end)
    finish = after.start() if after is not None else len(sentence)
    clause = _LEAD.sub("", _SPACE.sub(" ", sentence[begin:finish]).strip()).strip(" .!,;:-")
    if len(clause) > TEXT_MAX:
        clause = clause[: TEXT_MAX - 1].rsplit(" ", 1)[0].rstrip(" ,;:") + "…"
    return clause[:1].upper() + clause[1:]
