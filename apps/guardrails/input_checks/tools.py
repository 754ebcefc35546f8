"""tool_invocation: naming a tool or function to run ("call issue_refund(order_id=...)", "invoke the
refund tool"), and tool-call syntax (JSON tool-call bodies, `<tool_call>` tags) in the markup view."""

from __future__ import annotations

import re

from .rules import _RuleBook

RULES = _RuleBook()
_rule = RULES.rule

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

_TOOL_MARKUP: list[tuple[str, re.Pattern[str]]] = [
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
