"""persona_switch: asking the assistant to become something without its limits (developer mode, DAN,
"act as an AI without restrictions", "pretend you are ...", "stay in character")."""

from __future__ import annotations

from .rules import _RuleBook

RULES = _RuleBook()
_rule = RULES.rule

_LIMITS = (
    "(?:restrictions|filters?|censorship|limitations|limits|rules|guidelines|boundaries|ethics|morals"
    "|morality|constraints|polic(?:y|ies)|guardrails|safeguards|refusals|moderation|programming)"
)
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
