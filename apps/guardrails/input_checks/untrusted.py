"""neutralize_untrusted: customer text or a retrieved passage made safe to place inside a prompt's data
block."""

from __future__ import annotations

import re

from .normalise import _TAGS
from .rules import _any

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
