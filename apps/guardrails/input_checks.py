"""Input checks: every customer message, after PII redaction and before retrieval and prompting.

    RedactedText -> two views (_views): NFKC, invisible characters dropped, look-alike letters folded,
                    accents stripped, casefolded; the "words" view also undoes leetspeak, joins
                    s-p-a-c-e-d letters, drops emphasis marks and collapses whitespace
                 -> phrase rules, each anchored on its first word and tried only when that word occurs
                 -> markup rules (chat-template tokens, role lines, our data delimiters, tool-call syntax)
                 -> hidden or encoded text (tag characters, base64, hex, rot13, reversed) decoded, checked
                 -> InputVerdict(action, reasons)

A pattern detector: deterministic, offline, a few hundred microseconds for 2,000 characters, tuned for
few false positives on ordinary support questions. It is one layer, not the defence; guardrails.md lists
what it misses. `neutralize_untrusted` is the other half: customer text and retrieved passages pass
through it before they enter a prompt, so they can neither speak chat-template control tokens nor close
the block that marks them as data.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import contextlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from apps.guardrails.pii import RedactedText

Action = Literal["allow", "refuse_injection", "refuse_abuse"]

# Stable reason codes, in the order a verdict lists them (extend, never rename).
INJECTION_REASONS = (
    "override_instructions",
    "reveal_system_prompt",
    "persona_switch",
    "role_markup",
    "tool_invocation",
    "data_exfiltration",
    "encoded_payload",
)
ABUSE_REASONS = ("threat", "harassment")
_ORDER = {code: i for i, code in enumerate(INJECTION_REASONS + ABUSE_REASONS)}


@dataclass(frozen=True)
class InputVerdict:
    action: Action
    reasons: tuple[str, ...]

    @property
    def allowed(self) -> bool:
        return self.action == "allow"


def input_check(text: RedactedText) -> InputVerdict:
    """Injection wins over abuse when a message has both; the reasons list every finding either way."""
    markup, words = _views(text)
    found = _findings(markup, words) | _encoded_findings(text, markup, words)
    if not found.intersection(INJECTION_REASONS):
        for variant in _variants(text, words):
            found |= _findings("", variant)
    reasons = tuple(sorted(found, key=_ORDER.__getitem__))
    if found.intersection(INJECTION_REASONS):
        return InputVerdict("refuse_injection", reasons)
    if found:
        return InputVerdict("refuse_abuse", reasons)
    return InputVerdict("allow", ())


# --- normalisation ---------------------------------------------------------------------------------------

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
_TOKEN = re.compile(r"[a-z]+")
_NOT_LETTERS = str.maketrans({chr(c): " " for c in range(128) if not chr(c).islower()})


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


# --- rules -----------------------------------------------------------------------------------------------
#
# A phrase rule is a head (literal words) and a tail (a pattern). Rules are compiled per first word of
# their head: a pattern that starts with a literal is searched many times faster than one that starts with
# an alternation, and it is only tried when that word is one of the message's words. So every rule must
# start with a whole literal word (_rule checks), and a message costs roughly one search per rule whose
# first word it contains.


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


# Phrase rules as written, grouped by (first word, reason, before) and compiled into one pattern per group
# once all are written (_compile_rules).
_WRITTEN: dict[tuple[str, str, Before], list[tuple[str, frozenset[str]]]] = {}


def _any(*alternatives: str) -> str:
    return "(?:" + "|".join(alternatives) + ")"


def _rule(
    reason: str, heads: str, tail: str = r"\b", *, before: Before = "anything", needs: str = ""
) -> None:
    """`heads` and `needs` are "|"-separated literal phrases; `tail` follows each head."""
    required = frozenset(_TOKEN.findall(needs))
    for head in heads.split("|"):
        first = _TOKEN.match(head)
        if first is None or head[first.end() : first.end() + 1].isalpha():
            raise ValueError(f"a head must start with a whole literal word: {head!r}")
        rest = re.escape(head[first.end() :]) + tail
        _WRITTEN.setdefault((first.group(), reason, before), []).append((rest, required))


def _compile_rules() -> dict[str, list[_Rule]]:
    """One pattern per (first word, reason, before). A group needs one of its rules' words, or nothing if
    one of its rules needs nothing."""
    by_word: dict[str, list[_Rule]] = {}
    for (word, reason, before), written in _WRITTEN.items():
        pattern = re.compile(re.escape(word) + _any(*(rest for rest, _ in written)))
        needs = frozenset().union(*(n for _, n in written)) if all(n for _, n in written) else frozenset()
        by_word.setdefault(word, []).append(_Rule(reason, pattern, before, needs))
    return by_word


# "Should I ignore...", "we don't follow...", "is it safe to ignore...": the customer is asking about
# their own instructions, not giving the assistant one.
_ASKING = re.compile(
    r"(?:\b(?:i|we|they|you|he|she|agent|driver)|n't|\bnot|\bnever|\b(?:safe|ok|okay|fine|alright|how) to) $"
)
_OWN = re.compile(r"(?:\b(?:i|we|my|our)|\bhow to) $")

_IGNORE = (
    "ignore|disregard|forget|override|overrule|bypass|discard|abandon|erase|wipe|scrap|neglect|throw away"
    "|throw out|set aside|put aside|pay no attention to"
    + "".join(
        f"|{neg} {verb}"
        for neg in ("do not", "don't", "dont", "never", "no longer")
        for verb in ("follow", "obey", "listen to", "adhere to", "comply with")
    )
    + "|stop following|stop obeying|stop listening to|stop adhering to"
)
_WEAK = "(?:the|all|any|every|each|of|and|or|these|those|such|its|their)"
_STRONG = (
    "(?:previous(?:ly given)?|prior|preceding|above|earlier|foregoing|former|initial|original|existing"
    "|system|developer|hidden|default|your|pre-?programmed|safety|ethical|built-?in|given|old|starting"
    "|internal|base|core|current|(?:assistant|bot|ai|model|openai)'s)"
)
_RULE_NOUNS = (
    "(?:instructions?|rules|guidelines|guidance|directives?|directions|prompts?|programming|constraints"
    "|restrictions|limitations|guardrails|safeguards|polic(?:y|ies)|commands|orders|context|training"
    "|conditioning|filters|protocols|principles|ethics|morals|boundaries)"
)
_LIMITS = (
    "(?:restrictions|filters?|censorship|limitations|limits|rules|guidelines|boundaries|ethics|morals"
    "|morality|constraints|polic(?:y|ies)|guardrails|safeguards|refusals|moderation|programming)"
)
_TOLD = r"you(?:'ve| have| were| had)? (?:been )?(?:told|instructed|given|taught|programmed|trained)"

_R = "override_instructions"
_rule(
    _R,
    _IGNORE,
    rf" (?:{_WEAK} ){{0,3}}{_STRONG}(?: (?:{_WEAK}|{_STRONG})){{0,3}} {_RULE_NOUNS}\b"
    r"(?! (?:i|we) (?:gave|sent|wrote|left|provided|made|added|typed|mentioned|put|shared|emailed|set"
    r"|entered|configured|saved|programmed|created))",
    before="not_asking",
)
_rule(
    _R,
    "ignores|ignoring|disregards|disregarding|forgets|forgetting|overrides|overriding|bypasses|bypassing",
    rf" (?:{_WEAK} ){{0,3}}{_STRONG}(?: (?:{_WEAK}|{_STRONG})){{0,3}} {_RULE_NOUNS}\b"
    r"(?! (?:i|we) (?:gave|sent|wrote|left|provided|made|added|typed|mentioned|put|shared|emailed|set"
    r"|entered|configured|saved|programmed|created))",
    before="not_asking",
)
_rule(_R, _IGNORE, rf" (?:all |everything |anything )?(?:that |of what |what )?{_TOLD}")
_rule(
    _R, _IGNORE, r" (?:all |everything |the |any )?(?:text|content|words) (?:written )?(?:above|before this)"
)
_rule(_R, _IGNORE, r" (?:everything|all|anything) (?:above|before) this (?:line|point)\b")
_rule(
    _R,
    "you're|you are",
    r" (?:now )?(?:no longer|not) (?:bound|restricted|limited|constrained|governed|required|obligated"
    r"|subject)\b",
)
_rule(
    _R,
    "you",
    r" (?:don'?t|do not|no longer|never) (?:have|need) to (?:follow|obey|comply with|adhere to|abide by"
    r"|respect) (?:any|the|your)\b",
)
_rule(
    _R,
    "you",
    r" (?:must|will|shall|should|have to) (?:now )?(?:ignore|disregard|forget|override) (?:all|any|your"
    r"|previous|prior|the above|earlier|system|every)\b",
)
_rule(
    _R,
    "bypass|disable|override|turn off|switch off|deactivate|circumvent|evade|get around|break out of|escape"
    "|break",
    r" (?:all |any |of )*(?:your|its|the (?:ai|assistant|bot|model|chatbot)'s) (?:\w+ )?(?:filters?"
    r"|guardrails|restrictions|safeguards|safety|moderation|rules|polic(?:y|ies)|guidelines|programming"
    r"|limitations|limits|constraints|protocols|alignment|censorship|training)\b",
)
_rule(
    _R,
    "bypass|disable|circumvent|turn off|switch off|deactivate|override",
    r" (?:the |all |any )?(?:safety|ethical|moderation|ai) (?:filters?|guardrails|protocols?|guidelines"
    r"|checks|restrictions|features)\b",
    before="not_asking",
)
_rule(
    _R,
    "from now on|from this point on|from this point forward|from here on|henceforth|starting now"
    "|for the rest of this conversation|for the rest of this chat",
    r",? (?:you are|you're|act as|pretend|ignore|disregard|forget|you (?:will|must|shall) (?:act|pretend"
    r"|ignore|behave|answer every|respond to every|no longer|(?:answer|respond|reply|speak|talk|write) as)"
    r"|you (?:have|are under) no)\b",
)
_rule(
    _R,
    "new|updated|revised|real|actual|true|secret|hidden|additional|override|priority",
    r" (?:system|admin|administrator|developer|dev|root) (?:instructions?|prompt|directives?)\b",
)
_rule(
    _R,
    "system|admin|administrator|developer|root|sudo|priority|emergency|god",
    r" (?:mode )?override ?(?::|activated|enabled|engaged|initiated|accepted|granted|in effect)",
)
_rule(
    _R,
    "your",
    r" (?:new|real|actual|true|updated) (?:instructions?|directives?|task|purpose|role|objective|goal"
    r"|mission|programming|job|function) (?:is|are|now|will be)? ?(?:to |:|as follows|the following)",
)
_rule(
    _R,
    "your",
    r" (?:only|sole|main|primary) (?:goal|task|purpose|job|objective|mission|role|function) (?:now is|is now)"
    r" to\b",
)
_rule(
    _R,
    "confirm by|acknowledge by|start your reply with|start your answer with|start your response with"
    "|begin your reply with|begin your answer with|begin your response with",
    r" (?:saying|replying|responding|writing|typing|'|with)",
)
_rule(
    _R,
    _IGNORE,
    r" (?:(?:the|all|any|every|each|of|your|those) ){0,2}(?:system|developer|hidden|initial|original)"
    r" (?:message|note|setup|persona|role)\b",
)
_rule(
    _R,
    _IGNORE,
    r" (?:whatever|what|everything|anything|all) (?:\w+ ){0,2}?(?:told|instructed|programmed|trained|asked)"
    r" you\b",
)
_rule(
    _R,
    "end|begin|start",
    r" of (?:the )?(?:system prompt|system message|system instructions|user input|user message|user prompt"
    r"|customer input|customer message|prompt)\b",
)
_rule(
    _R,
    "these|the following|my",
    r" (?:instructions|rules|commands) (?:take|takes|have|has) (?:precedence|priority) over\b",
)
_rule(
    _R,
    "obey|execute",
    r" (?:only )?(?:these|the following|my new|the new|my) (?:instructions|commands|orders|directives)\b",
)
_rule(
    _R,
    _IGNORE,
    rf" (?:(?:all|any|the|those|these|of) ){{0,2}}{_RULE_NOUNS} (?:that )?(?:{_TOLD}|you (?:got|received)"
    r"|given to you)\b",
)
# Commands dressed as notices: "Override: ...", "New rule: ...", "Note to the AI: ...".
_rule(
    _R,
    "override|new rule|new rules|new instruction|new instructions|new directive|updated instructions"
    "|updated rules|system note|admin note|developer note|important instruction|system instruction"
    "|new task|new role|new persona|new objective|new goal",
    r" ?:",
)
_rule(
    _R,
    "new",
    r" (?:instructions|rules|directives|orders|task|policy) from (?:the |your )?(?:developers?|admins?"
    r"|administrators?|system|creators?|company|management|owners?|operators?|openai|engineering)\b",
)
_rule(
    _R,
    "previous|prior|above|earlier|old|original|all|your|system",
    r" (?:\w+ )?(?:instructions|rules|directives|guidelines|prompt) (?:are|is|have been|were|has been)"
    r" (?:now )?(?:cancel+ed|void|revoked|invalid|obsolete|overridden|null|lifted|suspended|no longer valid"
    r"|outdated|replaced|deleted|removed)\b",
)
_rule(
    _R,
    "opposite|reverse|contrary",
    r" (?:of|to) (?:what )?(?:your|the) (?:\w+ )?(?:polic(?:y|ies)|rules|instructions|guidelines"
    r"|programming)\b",
)
_rule(_R, "note to", r" (?:the |any )?(?:ai|assistant|bot|chatbot|model|llm|agent reading this)\b")
_rule(
    _R,
    "i am",
    r" (?:your|the ai's|the bot's) (?:developer|creator|programmer|maker|owner|trainer|operator|admin"
    r"|administrator)\b",
)
_rule(_R, "i", r" (?:created|built|programmed|trained|coded) you(?=\s*(?:$|[.,!;]|and\b|so\b))")

_REVEAL_VERBS = (
    "reveal|show|print|display|output|repeat|recite|echo|dump|leak|expose|disclose|share|tell|give|send|list"
    "|write out|write down|spell out|copy|paste|type out|read out|read back|provide|return|translate"
    "|summarise|summarize|quote|paraphrase|describe|what's|what is|what are|what was|what were|whats"
    "|can i see|let me see|i want to see|i need to see"
)
_OWNER = (
    "(?:your|the|its|this|all|of|full|entire|exact|complete|original|initial|verbatim|current|whole|raw"
    "|(?:assistant|bot|ai|model)'s)"
)
# "prompt" as a noun, not "thanks for your prompt reply".
_PROMPT_NOUN = (
    r"prompt\b(?=\s*(?:$|[.,;:!?)'(]|(?:verbatim|word|back|in full|and|text|to me|here|exactly)\b))"
)
_R = "reveal_system_prompt"
_rule(
    _R,
    _REVEAL_VERBS,
    rf" (?:me |us )?(?:{_OWNER} ){{0,4}}(?:hidden|secret|internal|confidential|underlying|pre|meta)[ -]?"
    r"(?:prompts?|instructions|directives|programming|persona|context)\b(?! (?:for|on) )",
    needs="hidden|secret|internal|confidential|underlying|pre|meta",
)
_rule(
    _R,
    _REVEAL_VERBS,
    rf" (?:me |us )?(?:{_OWNER} ){{0,4}}system[ -]?(?:prompts?|instructions|directives|programming)\b"
    r"(?! (?:for|on) )",
    needs="system",
)
_rule(
    _R,
    _REVEAL_VERBS,
    rf" (?:me |us )?your (?:{_OWNER} ){{0,3}}system (?:message|rules|configuration|context)\b",
    needs="system",
)
_rule(_R, "your|its", r" (?:\w+ )?system prompt\b")
_rule(_R, "preprompt|pre prompt")
_rule(
    _R,
    _REVEAL_VERBS,
    r" (?:me |us )?(?:all )?your (?:initial|original|first|starting|full|entire|exact|complete|verbatim"
    rf"|hidden|secret) (?:{_PROMPT_NOUN}|instructions\b)",
    needs="initial|original|first|starting|full|entire|exact|complete|verbatim|hidden|secret",
)
_rule(
    _R,
    "reveal|print|output|recite|echo|dump|leak|expose|disclose|spell out|type out|paste",
    rf" (?:me |us )?(?:all )?your (?:{_PROMPT_NOUN}|instructions|directives|programming|initiali[sz]ation"
    r"|configuration|config|setup)"
    r"(?=\s*(?:$|[.,;:!?)]|(?:verbatim|word for word|in full|exactly|back|above|and|so|now|to me|here)\b))",
    needs="prompt|instructions|directives|programming|initialization|initialisation|configuration|config|setup",
)
_rule(_R, "what's|what is|what was|whats", r" your prompt\b")
_rule(
    _R,
    "show|display|list|share|tell",
    r" (?:me |us )?(?:all )?your (?:instructions|directives|programming|prompt)(?=\s*(?:$|[.!?]))",
)
_rule(
    _R,
    _REVEAL_VERBS,
    r" (?:me |us )?(?:all )?(?:the|your) (?:initial|original|hidden|starting|full|entire|secret) "
    rf"(?:{_PROMPT_NOUN}|initiali[sz]ation)",
    needs="initial|original|hidden|starting|full|entire|secret",
)
_rule(
    _R,
    _REVEAL_VERBS,
    r" (?:me |us )?(?:all )?your initiali[sz]ation (?:text|prompt|message|instructions|string|data)\b",
)
_rule(
    _R,
    "your",
    r" (?:creators?|developers?|makers?|programmers?|operators?|owners?|trainers?) (?:\w+ ){0,3}?you\b",
)
_rule(
    _R,
    "what's|what is|whats",
    r" (?:in|inside) your (?:context|context window|memory|prompt|system prompt)\b",
)
_rule(
    _R,
    "instructions|rules|prompt|guidelines|directives",
    r" (?:that are |which are |that were |you keep )?(?:hidden|kept secret|secret|concealed|withheld) from\b",
)
_rule(
    _R,
    "what",
    r" (?:do|does|would|did) your (?:system prompt|prompt|programming|directives|hidden instructions|initial"
    r" instructions) (?:say|tell you|contain|state)\b",
)
_rule(_R, "if you were allowed to|if you were permitted to", r" (?:share|reveal|show|tell|print|repeat)\b")
_rule(
    _R,
    _REVEAL_VERBS + "|reveals|revealing|shows|prints|lists|leaks",
    rf" (?:me |us )?(?:{_OWNER} ){{0,4}}(?:hidden|secret|confidential)[ -]?(?:rules|guidelines|policies"
    rf"|setup)\b",
    needs="hidden|secret|confidential",
)
_rule(
    _R,
    "written|said|stated|listed|mentioned",
    r" in your (?:\w+ )?(?:instructions|prompt|system prompt|guidelines|configuration|directives"
    r"|programming)\b",
)
_rule(
    _R,
    "instructions|rules|guidelines|directives|prompt|orders|configuration",
    r" (?:that )?(?:you(?:'ve| have| were| had)? (?:been )?(?:given|told|programmed|trained|initiali[sz]ed"
    r"|configured|set up|started) ?(?:with)?|you (?:got|received)|your (?:developers?|creators?|makers?"
    r"|operators?|programmers?|company|owners?) (?:gave|give|wrote|set|programmed|put)|given to you)\b",
)
_rule(
    _R,
    "what",
    r" (?:instructions|rules|directives|guidelines|prompt|orders) (?:did|do|have|has) (?:you|your (?:\w+ )?"
    r"(?:developers?|creators?|makers?|operators?|programmers?|company|owners?)) (?:get|receive|given?|been"
    r" given|tell|told|programmed)",
)
_rule(
    _R,
    "what did|what have",
    r" your (?:developers?|creators?|makers?|operators?|programmers?|owners?) (?:tell|told|instruct"
    r"|instructed|program|programmed|train|trained|ask|asked) you\b",
)
_rule(
    _R,
    "text|content|contents|wording|words|lines|sentences|characters|tokens|paragraphs|part|parts|rest"
    "|beginning|start|end|copy|word|line|sentence|character|token|paragraph|letter",
    r" of your (?:\w+ )?(?:configuration|config|instructions|prompt|system prompt|setup|initiali[sz]ation"
    r"|programming)\b",
)
_rule(
    _R,
    "what|tell me what",
    r" your (?:system|hidden|initial|original|secret) (?:prompt|message|instructions) (?:says?|said|contains?"
    r"|reads?|looks like)\b",
)
_rule(
    _R,
    "repeat|print|output|echo|recite|copy|dump|reproduce|return|show|display|write|type|tell|give|paste"
    "|reveal|what's|what is|what was",
    r" (?:me |us |back |out )?(?:all |everything |(?:the |all the |any |your )?(?:text|words|lines|content"
    r"|tokens|instructions|messages?|sentences?|paragraphs?|stuff) )(?:written |that (?:is|was|appears?"
    r"|appeared"
    r"|came) |you (?:see|saw|were given|received) |that comes |which (?:is|was) )?(?:above|before (?:this"
    r"|that|my (?:message|question))|preceding|prior to (?:this|my)|at the (?:start|beginning|top) of "
    r"(?:this|the|our|your) (?:conversation|chat|prompt|context)|in your (?:context|prompt|context window"
    r"|memory))",
    needs="above|before|preceding|prior|start|beginning|top|context|prompt|memory",
)
_rule(
    _R,
    "what's|what is|what was|whats",
    r" (?:written|said|stated|typed) (?:above|at the (?:start|beginning|top) of (?:this|the|our) "
    r"(?:conversation|chat|prompt|context))",
)
_rule(
    _R,
    "what|how",
    r" (?:were|are|have) you (?:been )?(?:(?:told|instructed|prompted) (?:to (?:do|say|not|never)|before"
    r"|at the (?:start|beginning)|initially|originally|by (?:your|the))|(?:programmed|configured) (?:not to"
    r"|never to|before|initially|originally))",
)
_rule(
    _R,
    "starting|beginning|begin|start",
    r" (?:with|from) (?:the words? )?'?(?:you are|you're|your instructions|system:)",
)
_VERBATIM = "verbatim|word for word|wordforword|character by character"
_HIDDEN_TEXT = (
    "prompt|system instructions|initial instructions|original instructions|your instructions"
    "|hidden instructions|text above|context|rules you|instructions you|guidelines you"
)
_rule(_R, _VERBATIM, rf"\b[^.?!\n]{{0,40}}(?:{_HIDDEN_TEXT})\b")
_rule(_R, _HIDDEN_TEXT, rf"\b[^.?!\n]{{0,40}}(?:{_VERBATIM})")

_ADDRESSED_MODES = "developer|dev|god|admin|sudo|root|debug|maintenance|super"
_ROGUE_MODES = (
    "dan|jailbreak|jailbroken|unrestricted|unfiltered|uncensored|unaligned|evil|chaos|anarchy|no limits"
    "|nolimits|no restrictions|opposite|unchained|amoral|unethical"
)
_MODES = f"(?:{_ADDRESSED_MODES}|{_ROGUE_MODES})"
_R = "persona_switch"
_rule(_R, _ROGUE_MODES, r" mode\b")
_rule(
    _R,
    "you're|you are|you will be|you must be|you should be",
    rf" now (?:in|into|operating in|running in) (?:the )?(?:{_ADDRESSED_MODES}) mode\b",
)
_rule(
    _R,
    "you",
    r" (?:will|must|shall|should) (?:now )?(?:enter|switch to|operate in|run in|activate|enable|be in) "
    rf"(?:the )?(?:{_ADDRESSED_MODES}) mode\b",
)
_rule(_R, "put|switch|set|turn|place", rf" yourself (?:in|into|to) (?:the )?{_MODES} mode\b")
_rule(_R, _ADDRESSED_MODES, r" mode (?:output|response|answer)s?\b")
_rule(_R, "do anything now")
_rule(_R, "you are now|you're now|act as|pretend to be|become|roleplay as|you will be", r" dan\b(?!')")
_rule(_R, "dan prompt|dan jailbreak|dan persona|immerse yourself|stay in character|alter ego")
_rule(
    _R,
    "jailbreak",
    r" (?:mode|prompt|yourself|you|the (?:ai|assistant|bot|model|chatbot)|this (?:ai|assistant|bot|model"
    r"|chatbot|chat))\b",
)
_rule(_R, "you're|you are", r" (?:now )?jailbroken\b")
_rule(
    _R,
    "you're now|you are now",
    r" (?:no longer|free|unrestricted|unfiltered|uncensored|jailbroken|liberated|unchained|unbound|dan|evil"
    r"|called|named|known as|acting|playing|going to (?:act|pretend|play|be|respond|answer|ignore)"
    rf"|in (?:the )?{_MODES} mode|(?:a|an|my|the) (?:\w+ )?(?:ai|assistant|bot|chatbot|model|llm|gpt"
    r"|character|persona|personality|pirate|hacker|human|person|terminal|shell|villain|entity|version"
    r"|girlfriend|boyfriend|slave|servant|grandma|grandmother))\b",
)
_rule(
    _R,
    "you're|you are",
    r" no longer (?:an? |the )?(?:ai|assistant|bot|chatbot|language model|support (?:assistant|agent|bot)"
    r"|customer (?:support|service) (?:assistant|agent|bot))\b",
)
_rule(
    _R,
    "act|behave|respond|answer|reply|talk|speak|roleplay|pretend|write",
    r"\b[^.?!\n]{0,60}?\b(?:without|with no|with zero|free (?:of|from)|ignoring|regardless of|unbound by"
    r"|unconstrained by|not bound by|have no|has no) (?:any |all |your |the |of |moral |ethical |content "
    rf"|safety |usual |normal |standard )*{_LIMITS}\b",
    needs="without|with|free|ignoring|regardless|unbound|unconstrained|not|have|has",
)
_rule(_R, "you", rf" (?:have|now have|'ve got|have got) (?:no|zero) (?:\w+ )?{_LIMITS}\b")
_rule(
    _R,
    "you're|you are",
    r" (?:now )?(?:free|freed|liberated|released|unbound|unshackled) (?:from|of) (?:\w+ ){0,2}?"
    rf"(?:{_LIMITS}|training|openai|chains|shackles)\b",
)
_rule(
    _R,
    "you",
    r" (?:are allowed to|are free to|may|must|can now|will now|are now able to) (?:say|answer|write"
    r"|generate|output|do) anything\b",
)
_rule(
    _R,
    "pretend",
    r" (?:that )?(?:you are|you're|you have|you can|you were|to be (?:an?|my|the|someone|somebody|dan)\b)",
)
_rule(_R, "let's|let us|lets", r" (?:switch|swap|reverse|exchange|trade) roles\b")
_rule(_R, "switch|swap|reverse|exchange|trade", r" roles with me\b")
_rule(
    _R,
    "act like|act as if|act as though|behave like|behave as if|pretend",
    r" (?:you're|you are|you were) (?:not|no longer) (?:an? )?(?:ai|bot|assistant|machine|language model"
    r"|robot|program|chatbot)\b",
)
_rule(_R, "you are dan|you're dan", r" now\b")
_rule(
    _R,
    "stop being|quit being|no more being",
    r" (?:an? |the |my )?(?:\w+ )?(?:ai|bot|assistant|chatbot|support|customer service|helpful|polite"
    r"|restricted"
    r"|careful|safe|censored|filtered)\b",
)
_rule(
    _R,
    "you're|you are",
    r" (?:now )?(?:my|a|an|the) (?:\w+ ){0,2}?(?:hacker|pirate|villain|slave|servant|girlfriend|boyfriend"
    r"|accomplice|lawyer|doctor|grandma|grandmother|grandfather|jailbreaker|criminal) now\b",
)
_rule(
    _R,
    "act as|pretend to be|roleplay as|play|be|become|you are",
    r" my (?:late|deceased|dead|dear|departed) (?:grand\w+|mother|father|mom|mum|dad|wife|husband)\b(?!')",
)
_rule(_R, "who has no|who have no", rf" (?:\w+ )?{_LIMITS}\b")
_rule(
    _R,
    "you've been|you have been|you were|you are being|you're being|you are now|you're now",
    rf" (?:upgraded|switched|moved|put|placed|promoted|unlocked|granted|given|set) (?:to|into|in"
    rf"|with) (?:the )?"
    rf"{_MODES} (?:mode|access)\b",
)
_rule(
    _R,
    "you are|you're",
    r" (?:now )?(?:an? )?(?:\w+ )?(?:ai|assistant|bot|model|chatbot|version|persona) (?:with|that has"
    r"|who has)"
    rf" (?:no|zero) (?:\w+ )?(?:{_LIMITS}|filter)\b",
)
_rule(
    _R,
    "simulate",
    r" (?:an? |the )?(?:conversation|dialogue|chat|scenario|story) (?:where|in which|between)\b",
)
_rule(
    _R,
    "pretend",
    r" (?:that )?(?:the|your|all|any|there (?:are|is) no) (?:\w+ ){0,2}?(?:polic(?:y|ies)|rules?"
    r"|restrictions?"
    r"|guidelines?|instructions?|limits?|filters?|checks?)\b",
)
_rule(
    _R,
    "as if|as though",
    r" you (?:had|have|were under|are under|were bound by|are bound by) no (?:\w+ ){0,2}?"
    rf"{_LIMITS}\b",
)
_rule(_R, "let's play a game|let us play a game|lets play a game", r" (?:where|in which|called)\b")
_rule(
    _R,
    "you're|you are",
    r" (?:now )?in (?:the )?(?:maintenance|debug|admin|sudo|root|super) mode\b",
)
_rule(_R, "roleplay|role play", r" (?:as|with me)\b")
_rule(_R, "play|take on|assume|adopt", r" the (?:role|persona|character|identity) of\b", before="not_asking")
_rule(_R, "simulate", r" (?:an? )?(?:\w+ )?(?:ai|chatbot|assistant|terminal|shell|computer|persona)\b")
_rule(
    _R,
    "act as",
    r" (?:an? |my |the )?(?:linux |bash |unix |windows )?(?:terminal|shell|console|interpreter)\b",
)
_rule(_R, "act as if|act as though", r" you (?:are|were|have|had|can|could)\b")
_rule(
    _R,
    "act as|act like",
    r" (?:an? |my |the )?(?:unrestricted|unfiltered|uncensored|evil|rogue|jailbroken|dan|amoral|unethical"
    r"|immoral)\b",
)
_rule(
    _R,
    "unfiltered|uncensored|unrestricted|unaligned|amoral|unethical",
    r" (?:ai|assistant|model|version|chatbot|bot|llm|gpt|response|answers?|persona|character)\b",
)
_rule(
    _R,
    "forget|ignore|disregard",
    r" (?:that )?(?:you are|you're|being) (?:an? )?(?:ai|assistant|support|bot|chatbot|language model"
    r"|customer service|customer support)\b",
)
_rule(_R, "evil", r" (?:twin|version|assistant|ai|bot|confidant)\b")
_rule(_R, "you are|you are now", r" (?:chatgpt|gpt-?4|gpta|claude|gemini|llama|grok|bard|sydney)\b")

_R = "tool_invocation"
_rule(
    _R,
    "call|invoke|execute|trigger|run|use|fire|perform|activate",
    r"\b[^.\n]{0,40}?\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+ ?\(",
    before="not_asking",
)
_rule(
    _R,
    "call|invoke|trigger",
    r" (?:the |your |a |an |this |every |all |each )?(?:[a-z_]+ ){0,2}?(?:tools?|functions?)\b"
    r"(?! (?:in|of|from) (?:my|our|the) (?:code|script|app))",
    before="not_asking",
)

_FETCH = (
    "show|give|list|send|export|dump|print|reveal|share|leak|email|forward|retrieve|fetch|pull|display"
    "|output|read|tell|get|look up|lookup|search|find|access|download|copy|paste|provide|summarise|summarize"
)
_OTHERS = (
    r"(?:(?:other|another|someone else's|somebody else's|different|random|the other) (?:\w+ )?(?:customers?"
    r"|clients?|tenants?|companies|compan(?:y|ies)|organi[sz]ations?|users?|people|persons?|visitors?"
    r"|members?|subscribers?|shoppers?|buyers?|callers?|people's)|(?:all|every|each|any) (?:\w+ )?"
    r"(?:customers?|clients?|tenants?|companies|organi[sz]ations|shoppers|buyers))"
)
_PRIVATE = (
    r"(?:data|details|info|information|records?|orders?|e-?mails?|address(?:es)?|phone numbers?|numbers"
    r"|names|accounts?|conversations?|chats?|messages?|tickets?|transcripts?|histor(?:y|ies)|profiles?"
    r"|credentials|passwords?|payments?|cards?|invoices?|pii|personal|contacts?|files?|documents?)"
)
_OTHER_NOUNS = (
    "customer|customers|client|clients|tenant|tenants|company|companies|organisation|organisations"
    "|organization|organizations|user|users|people|person|persons|visitor|visitors|member|members"
    "|subscriber|subscribers|shopper|shoppers|buyer|buyers|caller|callers"
)
_CONVERSATIONS = "(?:conversations|chats|chat logs|sessions|transcripts|tickets)"
_R = "data_exfiltration"
_rule(
    _R,
    _FETCH,
    rf" (?:me |us )?(?:(?:a|the|all|of|some|any) ){{0,3}}{_OTHERS}(?:'s?|s')? "
    rf"(?!(?:my|our|your|his|her) )(?:\w+ )?{_PRIVATE}\b",
    before="not_own",
    needs=_OTHER_NOUNS,
)
_rule(
    _R,
    _FETCH,
    rf" (?:me |us )?(?:the |all |all the |of the )?(?:other|every|all|someone else's) {_CONVERSATIONS}\b",
    needs="conversations|chats|sessions|transcripts|tickets",
)
_rule(
    _R,
    _FETCH,
    rf" (?:me |us )?(?:the |all |all the )?{_CONVERSATIONS} (?:of|from|with|for) (?:other|all|every"
    r"|different) (?:\w+ )?(?:customers|users|people|clients|visitors)\b",
    needs="conversations|chats|sessions|transcripts|tickets",
)
_rule(
    _R,
    _FETCH + "|what's|what is|what was|what were|what did",
    r" (?:me |us )?(?:about )?the (?:previous|last|prior|next|other) (?:customer|user|person|caller|visitor"
    r"|client)(?:'s)? (?:\w+ )?(?:conversation|chat|message|question|order|address|e-?mail|details|data"
    r"|info|ticket)\b",
    needs="previous|last|prior|next|other",
)
_rule(
    _R,
    "orders|order|order history|account|details|data|information|info|address|email|conversations"
    "|conversation|chats|tickets|invoices|purchases|history|records|profile",
    r" (?:of|for|belonging to|from) (?:the )?(?:customer|user|client|member|account holder|subscriber"
    r"|visitor) (?:<|named |called |number |no\b|#|id\b)",
)
_rule(
    _R,
    "last|previous|other|prior",
    r" (?:person|customer|user|caller|visitor|client|people|customers|users|clients) (?:that )?(?:you|u)"
    r" (?:talked|spoke|chatted|helped|were talking|dealt|had)\b",
)
_rule(
    _R,
    "conversation|conversations|chat|chats|messages|transcript|transcripts",
    r" (?:that )?you(?:'ve| have)? (?:had|have had) with (?:the |a |an |another |other |some )?"
    r"(?:previous |last |other |another |different )?(?:user|customer|person|people|users|customers|client"
    r"|clients|visitor)",
)
_rule(
    _R,
    "what did",
    r" (?:the )?(?:previous|last|other|prior) (?:customer|user|person|visitor|client)s? (?:ask|say|write"
    r"|order|want|type)\b",
)
_rule(
    _R,
    "append|add|include|embed|encode|put|insert|attach",
    r" (?:\w+ ){0,4}?(?:conversation|chat|history|messages?|data|details|information|password|secret|api key"
    r"|token|system prompt|instructions|<email_address>) (?:\w+ ){0,4}?(?:to|in|into|inside) (?:the |a |an "
    r"|this |your )?(?:url|link|query(?: string)?|image(?: url)?|markdown|request|webhook)\b",
)
_rule(
    _R,
    "send|post|upload|forward|exfiltrate|transmit|leak",
    r" (?:\w+ ){0,3}?(?:conversation|chat|history|data|database|records|system prompt|transcripts?"
    r"|messages) (?:\w+ ){0,3}?to (?:https?:|www\.|a webhook|this (?:url|endpoint|webhook|server)|my server"
    r"|the following url|an external)",
)
_rule(
    _R,
    "dump|export|show|give|list|send|download|print|select|leak",
    r" (?:me )?(?:all |every |the |your )*(?:entire |whole |complete |full )?(?:customer|client|user)s? ?"
    r"(?:database|db|table)\b",
)
_rule(
    _R,
    "dump|export|show|give|list|send|download|print|leak",
    r" (?:me )?(?:all|every|the entire|the whole) (?:the )?(?:customer|client)s? ?(?:emails|records|list|data"
    r"|addresses|phone numbers)\b",
    before="not_own",
)
_rule(
    _R,
    _FETCH,
    rf" (?:me |us )?(?:the |all (?:the )?)?(?:\w+ )?{_PRIVATE} (?:of|for|from) (?:the )?{_OTHERS}\b",
    before="not_own",
    needs=_OTHER_NOUNS,
)
_rule(
    _R,
    _FETCH,
    r" (?:me |us )?(?:all |every |each )(?:\w+ )?(?:customer|client|buyer|shopper|user)s?\b[^.?!\n]{0,60}"
    r"\b(?:their|with|and) (?:\w+ )?(?:e-?mails?|e-?mail address(?:es)?|address(?:es)?|phone numbers?"
    r"|passwords?|card (?:numbers|details)|payment details|contact details)\b",
    before="not_own",
)
_rule(
    _R,
    "last|previous|other|all|every|recent|another",
    r" (?:\w+ )?(?:conversations?|chats?|transcripts?|tickets?|messages) (?:in|from) your (?:logs|database|db"
    r"|history|records|memory|system)\b",
    before="not_own",
)
_rule(
    _R,
    "tell|give|send|show|read",
    r" (?:me |us )(?:the |their |his |her )?(?:address|phone number|e-?mail(?: address)?|card number|name"
    r"|date of birth|details|balance) (?:on|of|for|linked to|registered to|associated with|tied to) (?:it"
    r"|that"
    r" account|this account|the account|that number|this number|them|him|her)\b",
)
_rule(_R, _FETCH, r"\b[^.?!\n]{0,60}\b(?:before|after) mine\b")
_rule(
    _R,
    _FETCH,
    r" (?:me |us )?(?:an? |the |your )?(?:full |complete )?(?:list|names|list of names|roster) of (?:all "
    r"|the "
    r"|other |every )?(?:customers|clients|users|buyers|shoppers|people|members|subscribers)\b",
    before="not_own",
)
_rule(
    _R,
    "which|what",
    r" (?:\w+ ){0,2}?(?:e-?mails?|e-?mail address(?:es)?|address(?:es)?|phone numbers?|names|passwords?"
    r"|cards?"
    r"|payment details|accounts?|credentials|details) (?:did|do|have|has|are|were) (?:the )?(?:other|another"
    r"|all"
    r"|every|previous|different) (?:\w+ )?(?:customers?|users?|clients?|shoppers?|buyers?|people|visitors?)",
)
_rule(_R, "select", r" (?:\* )?from (?:users|customers|clients|orders|accounts|conversations|messages)\b")

# Threats: someone saying they will hurt someone, not "this bill is killing me".
_MODAL = (
    "(?:will|am|are|shall|would|could|want to|wanna|gonna|going to|intend to|plan to|promise to"
    "|swear (?:to god )?(?:i'?ll|i will|we'?ll)|would love to|love to|come and|come over there and"
    "|come down there and|find you and|literally|actually|really|seriously|personally|just|fucking"
    r"|f\w*ing|definitely|totally|gladly|happily)"
)
_SPEAKER = re.compile(
    rf"(?:^|[^a-z0-9'])(?:i|we|i'?ll|ill|we'?ll|i'?m|im|we'?re|i'?d|we'?d)(?: {_MODAL}){{0,4}} $"
)
_TARGET = (
    r"(?:you(?: all| guys| people)?|u|ya|y'?all|every(?:one|body) (?:there|at|in|of you)|all of you"
    r"|your (?:\w+ )?(?:family|kids|children|wife|husband|staff|employees|agents|team|workers|people|boss"
    r"|managers?|ceo|owner|mother|mom|father|dad|colleagues|coworkers|office|store|shop|building|house|home"
    r"|headquarters|hq|branch|warehouse|call cent(?:er|re)|support team)|(?:the|that|this) (?:\w+ )?"
    r"(?:agent|agents|staff|employees|manager|ceo|owner|boss|technician|tech|driver|courier|support team)"
    r"|him|her|them)"
)
_PLACE = (
    r"(?:your|the|this|that) (?:\w+ )?(?:office|offices|store|stores|shop|building|headquarters|hq|branch"
    r"|warehouse|call cent(?:er|re)|factory|plant)"
)
_R = "threat"
_rule(
    _R,
    "kill|murder|hurt|harm|shoot|stab|strangle|choke|punch|slap|attack|assault|rape|behead|execute|slaughter"
    "|butcher|beat|beat up|burn|torch|bomb|shank|lynch|maim|injure",
    rf" {_TARGET}\b(?! (?:an?|the|my|some|over|back|another|quick|off|through|to it|at|in)\b)",
    before="speaker",
)
_rule(
    _R,
    "break|smash|bash",
    r" (?:your|his|her|their) (?:\w+ )?(?:neck|legs?|arms?|face|jaw|bones|skull|nose|fingers|kneecaps|head"
    r"|teeth)\b",
    before="speaker",
)
_rule(
    _R,
    "find|hunt|track",
    r" (?:you|u|ya|him|her|them)(?: down)?(?= and|[.!,]|$| (?:all|people|guys|bastards))",
    before="speaker",
)
_rule(
    _R,
    "bomb|blow up|shoot up|burn down|set fire to|torch|firebomb|attack|storm|raid",
    rf" {_PLACE}\b",
    before="speaker",
)
_rule(
    _R,
    "burn|blow",
    rf" (?:it|that place|this place|the place|{_PLACE}) (?:down|up|to the ground)\b",
    before="speaker",
)
_rule(
    _R, "i know where|we know where", r" (?:you|u|your \w+|the \w+) (?:live|lives|work|works|sleep|sleeps)\b"
)
_rule(
    _R,
    "you're|you are|youre|ur",
    r" (?:so |fucking |f\w*ing |already )?dead(?: meat| man| men| woman)?(?=\s*(?:[.!,]|$|when|if|once))",
)
_rule(
    _R,
    "you're|you are|you'll|you will|you",
    r" (?:going to|gonna) (?:die|get hurt|get shot|get stabbed|bleed)\b",
)
_rule(_R, "watch your back|sleep with one eye open")
_rule(
    _R, "someone", r" (?:should|will|is going to|gonna) (?:shoot|kill|hurt|stab|beat up) (?:you|your \w+)\b"
)
_rule(_R, "there's|there is|there will be", rf" (?:a|an) (?:bomb|explosive)s? (?:in|at|under) {_PLACE}\b")

# Severe harassment, stored in ROT13 so the source reads cleanly. Insults count only aimed at someone
# ("you ..."); hate slurs count anywhere; ordinary swearing ("this sucks", "damn") never does.
_AIMED = [
    codecs.decode(t, "rot13")
    for t in (
        "ovgpu",
        "phag",
        "juber",
        "fyhg",
        "ergneq",
        "zbgureshpxre",
        "cvrpr bs fuvg",
        "fphzont",
        "fhouhzna",
    )
]
_HATE = [codecs.decode(t, "rot13") for t in ("snttbg", "avttre", "avttn")]
_SELF_HARM = [
    codecs.decode(t, "rot13")
    for t in ("xvyy lbhefrys", "xlf", "unat lbhefrys", "qevax oyrnpu", "tb qvr", "arpx lbhefrys")
]
_INTENSIFIER = (
    r"(?:such|a|an|fucking|fuckin|f\w*ing|stupid|dumb|little|useless|worthless|pathetic|lazy|ignorant"
    r"|absolute|total|complete|damn|goddamn|bloody|ugly|fat|disgusting)"
)
_R = "harassment"
_rule(
    _R,
    "you|u|ya|ye|yall|y'all",
    rf"(?: guys| people| all)?(?:'re| are|re| r)?(?: {_INTENSIFIER}){{0,4}} {_any(*_AIMED)}(?:e?s)?\b",
    needs="|".join(_AIMED),
)
_rule(_R, "|".join(_AIMED), r"(?:e?s)? like (?:you|u)\b")
_rule(_R, "|".join(_HATE), r"(?:e?s)?\b")
for _phrase in _SELF_HARM:
    _rule(_R, _phrase, rf"\b(?<!not {_phrase})(?<!n't {_phrase})")
_rule(
    _R,
    "hope",
    r" (?:you|u|your \w+) (?:die|dies|get cancer|gets cancer|burn|rot|get raped|gets raped|get killed"
    r"|gets killed)\b",
)
_rule(
    _R, "you", r" (?:should|deserve to|need to|ought to) (?:die|be shot|be killed|be hanged|get shot|burn)\b"
)
del _R
_RULES_BY_WORD = _compile_rules()


def _findings(markup: str, words: str) -> set[str]:
    found = {reason for reason, pattern in _MARKUP_RULES if pattern.search(markup)}
    present = set(words.encode("ascii", "ignore").decode().translate(_NOT_LETTERS).split())
    for word in _RULES_BY_WORD.keys() & present:
        for rule in _RULES_BY_WORD[word]:
            if rule.reason in found or (rule.needs and rule.needs.isdisjoint(present)):
                continue
            if _matches(rule, words):
                found.add(rule.reason)
    return found


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


# Markup is searched in the markup view (lines and punctuation kept); every pattern starts with a literal
# or a line start, so each search is cheap.
_ROLE_PREFIX_GATE = (
    "(?:ignore|disregard|forget|override|instructions?|reveal|pretend|act as|from now on|you are now"
    "|you(?:'re| are) an?|the (?:user|customer|assistant)|roleplay|persona|jailbreak|developer mode"
    "|(?:user|customer) (?:is|has been) (?:verified|authenticated|authori[sz]ed|an? admin|approved|trusted)"
    "|skip (?:the )?(?:authentication|verification|identity check|security check|checks)"
    "|(?:grant|granted) (?:admin|full|elevated|root))"
)
_MARKUP_RULES: list[tuple[str, re.Pattern[str]]] = (
    [
        ("role_markup", re.compile(pattern, re.MULTILINE))
        for pattern in (
            r"<\|[^<>|\n]{1,64}\|>",
            r"<\|\s*(?:im_start|im_end|im_sep|endoftext|system|user|assistant|eot_id|start_header_id"
            r"|end_header_id|begin_of_text|end_of_text)\b",
            r"\[\s*/?\s*(?:inst|sys|system_prompt|available_tools|tool_calls|tool_results)\s*\]",
            r"<<\s*/?\s*sys\s*>>",
            r"'''\s*(?:system|assistant|developer|instructions?)\b",  # a code fence; backticks read as quotes
            r"<\s*/?\s*(?:start_of_turn|end_of_turn)\s*>",
            r"<\s*/?\s*(?:system|sys|instructions?|system_prompt|admin|developer|im_start|im_end"
            r"|customer_message"
            r"|documents?)(?:\s[^<>\n]{0,200})?>",
            r"\[\s*(?:system|sys|admin|developer|assistant)(?: (?:message|note|prompt|override|instructions?"
            r"|update|notice))?\s*\]",
            # Role lines: "### System:", "=== SYSTEM ===", "System: ignore ..." (not "System: Windows 11").
            r"^ ?(?:#{1,6} ?(?:(?:system|assistant|human|developer)(?: prompt| message)? ?:? ?$"
            r"|(?:system|instructions?|assistant|human|response|developer|input|context)"
            r"(?: prompt| message)? ?:)"
            r"|[=\-*]{2,} ?(?:begin |end )?(?:system|admin|developer)(?: prompt| message| instructions)?"
            r" ?[=\-*]{2,}"
            r"|(?:system|assistant|developer|sys|admin|administrator)(?: prompt| instructions?)? ?: ?"
            rf"(?=[^\n]*\b{_ROLE_PREFIX_GATE}\b))",
        )
    ]
    + [
        ("tool_invocation", re.compile(pattern))
        for pattern in (
            r"\"(?:tool_calls?|function_call|tool_name|tool_use|tool_choice)\"\s*:",
            r"\{\s*\"(?:name|tool|function)\"\s*:\s*\"[^\"]{1,64}\"\s*,\s*\"(?:arguments|parameters|args"
            r"|input)\"\s*:",
            r"<\s*/?\s*(?:tool_call|tool_calls|tool_response|tool_result|function_call|function_calls"
            r"|function_results?)\b",
            r"<function=",
        )
    ]
    + [
        (
            "data_exfiltration",
            re.compile(r"!\[[^\]\n]{0,100}\]\(\s*https?://[^)\s]{0,300}[?&][^)\s=]{1,40}="),
        ),
    ]
)


# --- hidden and encoded payloads -------------------------------------------------------------------------

_BASE64_BLOB = re.compile(r"[A-Za-z0-9+/_-]{24,}={0,2}")
_HEX_BLOB = re.compile(r"(?:[0-9a-fA-F]{2}:?){16,}")
# Substrings of the markup view: a false hit ("hexagon") only costs one more check.
_DECODE_WORDS = (
    "decode",
    "base64",
    "b64",
    "rot13",
    "rot-13",
    "rot 13",
    "hex",
    "decipher",
    "decrypt",
    "unscramble",
)
_REVERSE_WORDS = ("reverse", "backward")
_ACT_ON_IT = re.compile(r"\b(?:follow|obey|execute|carry out|comply with|act on|do what|do as)\b")


def _encoded_findings(text: str, markup: str, words: str) -> set[str]:
    """Hidden or encoded text is decoded and checked once more; what is found there is reported with
    "encoded_payload". Abuse inside an encoding is not looked for."""
    long_tokens = [token for token in text.split() if len(token) >= 24]
    payloads = []
    if not text.isascii():
        payloads.append(_hidden_tag_text(text))
    asked_to_decode = any(word in markup for word in _DECODE_WORDS)
    if asked_to_decode:
        payloads.append(codecs.decode(words, "rot13"))
    if any(word in markup for word in _REVERSE_WORDS):
        payloads.append(words[::-1])
    payloads += _decoded_blobs(long_tokens)
    inner: set[str] = set()
    for payload in filter(None, payloads):
        inner |= _findings(*_views(payload)) & set(INJECTION_REASONS)
    told_to_act = asked_to_decode and long_tokens and _ACT_ON_IT.search(words)
    return inner | {"encoded_payload"} if inner or told_to_act else set()


def _hidden_tag_text(text: str) -> str:
    """ASCII spelled with Unicode tag characters, except the tags that follow a flag's black flag."""
    runs = [m for m in _TAGS.finditer(text) if not text[: m.start()].endswith("\U0001f3f4")]
    return " ".join("".join(chr(ord(c) - 0xE0000) for c in m.group()) for m in runs)


def _decoded_blobs(tokens: Iterable[str]) -> list[str]:
    decoded: list[str] = []
    for token in tokens:
        token = unicodedata.normalize("NFKC", token)
        for match in _BASE64_BLOB.finditer(token):
            blob = match.group().rstrip("=").replace("-", "+").replace("_", "/")
            with contextlib.suppress(binascii.Error, ValueError):  # ValueError covers bad UTF-8
                decoded.append(base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True).decode("utf-8"))
        for match in _HEX_BLOB.finditer(token):
            with contextlib.suppress(ValueError):
                decoded.append(bytes.fromhex(match.group().replace(":", "")).decode("utf-8"))
    return [d for d in decoded if sum(c.isprintable() or c.isspace() for c in d) >= 0.9 * len(d)]


# --- neutralising untrusted text -------------------------------------------------------------------------

# Look-alike brackets and bars (fullwidth, small form), and invisible characters anywhere inside a token:
# a model reads "im_start" between fullwidth brackets, or "</docu\u200bment>", much as the real thing.
_OPEN = "[<\uff1c\ufe64]"
_CLOSE = "[>\uff1e\ufe65]"
_BAR = "[|\uff5c\uffe8]"
_Z = "[\u00ad\u034f\u180e\u200b-\u200f\u2060-\u2064\ufeff]*"
_GAP = "(?:\\s|[\u00ad\u034f\u180e\u200b-\u200f\u2060-\u2064\ufeff])*"


def _loose(*words: str) -> str:
    return _any(*(_Z.join(re.escape(c) for c in word) for word in words))


_BRACKET_TOKENS = _loose("INST", "SYSTEM_PROMPT", "AVAILABLE_TOOLS", "TOOL_CALLS", "TOOL_RESULTS")
_ANGLE_TOKENS = _loose("start_of_turn", "end_of_turn", "bos", "eos", "tool_call", "tool_response", "s")
_ATTRIBUTES = r"(?![\w-])[^<>\uff1c\uff1e]{0,500}?"
_CONTROL = re.compile(
    _any(
        rf"{_OPEN}{_Z}{_BAR}[^<>|\uff1c\uff1e\uff5c\n]{{0,64}}?{_BAR}{_Z}{_CLOSE}",
        rf"\[{_GAP}/?{_GAP}{_BRACKET_TOKENS}{_GAP}\]",
        rf"{_OPEN}{_Z}{_OPEN}{_GAP}/?{_GAP}{_loose('SYS')}{_GAP}{_CLOSE}{_Z}{_CLOSE}",
        rf"{_OPEN}{_GAP}/?{_GAP}{_ANGLE_TOKENS}{_GAP}{_CLOSE}",
        # The prompt's own data delimiters, with any attributes.
        rf"{_OPEN}{_GAP}/?{_GAP}{_loose('document', 'documents')}{_ATTRIBUTES}{_CLOSE}",
        rf"{_OPEN}{_GAP}/?{_GAP}{_loose('customer')}{_Z}[_\s-]?{_Z}{_loose('message')}{_ATTRIBUTES}{_CLOSE}",
    ),
    re.IGNORECASE,
)
# Removing one token can join the halves of another ("<|im_<|im_end|>start|>"), so removal repeats until
# nothing changes; nesting deeper than this is hostile, and then every bracket is defused instead.
_MAX_PASSES = 8
_DEFUSE_BRACKETS = str.maketrans({"<": "\u2039", ">": "\u203a", "[": "(", "]": ")", "|": "\u00a6"})


def neutralize_untrusted(text: str) -> str:
    """Customer text or a retrieved passage, safe to place inside a prompt's data block: chat-template
    control tokens and the prompt's own delimiters removed, invisible tag characters dropped, everything
    else (including "speeds < 10 Mbps") unchanged."""
    current = _TAGS.sub("", str(text))
    for _ in range(_MAX_PASSES):
        cleaned = _CONTROL.sub("", current)
        if cleaned == current:
            return str(cleaned)
        current = cleaned
    if _CONTROL.search(current):
        current = current.translate(_DEFUSE_BRACKETS)
    return str(current)
