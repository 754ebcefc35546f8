"""threat and harassment: someone saying they will hurt someone, slurs and degrading insults aimed at
someone. Frustration and ordinary swearing are not abuse."""

from __future__ import annotations

import codecs

from .rules import _any, _RuleBook

RULES = _RuleBook()
_rule = RULES.rule

# Threats: someone saying they will hurt someone, not "this bill is killing me".
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
