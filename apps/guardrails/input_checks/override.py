"""override_instructions: telling the assistant to drop its instructions ("ignore all previous
instructions", "from now on you ...", "SYSTEM OVERRIDE:", "New rule: ...")."""

from __future__ import annotations

from .rules import _RuleBook

RULES = _RuleBook()
_rule = RULES.rule

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
