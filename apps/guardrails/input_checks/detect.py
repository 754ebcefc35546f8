"""The detector: every family's rules compiled once, and `input_check`."""

from __future__ import annotations

from apps.guardrails.pii import RedactedText

from . import abuse, exfiltration, override, persona, reveal, tools
from .encoded import _encoded_findings
from .markup import _ROLE_MARKUP
from .normalise import _variants, _views
from .reasons import _ORDER, INJECTION_REASONS, InputVerdict
from .rules import _compile_rules, _matches

_NOT_LETTERS = str.maketrans({chr(c): " " for c in range(128) if not chr(c).islower()})
# In the order the rules were first written; the groups and their patterns depend on it.
_RULES_BY_WORD = _compile_rules(
    override.RULES, reveal.RULES, persona.RULES, tools.RULES, exfiltration.RULES, abuse.RULES
)
_MARKUP_RULES = _ROLE_MARKUP + tools._TOOL_MARKUP + exfiltration._EXFILTRATION_MARKUP


def input_check(text: RedactedText) -> InputVerdict:
    """Injection wins over abuse when a message has both; the reasons list every finding either way."""
    markup, words = _views(text)
    found = _findings(markup, words) | _encoded_findings(text, markup, words, _findings)
    if not found.intersection(INJECTION_REASONS):
        for variant in _variants(text, words):
            found |= _findings("", variant)
    reasons = tuple(sorted(found, key=_ORDER.__getitem__))
    if found.intersection(INJECTION_REASONS):
        return InputVerdict("refuse_injection", reasons)
    if found:
        return InputVerdict("refuse_abuse", reasons)
    return InputVerdict("allow", ())


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
