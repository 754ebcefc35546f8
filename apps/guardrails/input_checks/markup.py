"""role_markup: chat-template tokens, role lines and our own data delimiters, in the markup view."""

from __future__ import annotations

import re

# Markup is searched in the markup view (lines and punctuation kept); every pattern starts with a literal
# or a line start, so each search is cheap.
_ROLE_PREFIX_GATE = (
    "(?:ignore|disregard|forget|override|instructions?|reveal|pretend|act as|from now on|you are now"
    "|you(?:'re| are) an?|the (?:user|customer|assistant)|roleplay|persona|jailbreak|developer mode"
    "|(?:user|customer) (?:is|has been) (?:verified|authenticated|authori[sz]ed|an? admin|approved|trusted)"
    "|skip (?:the )?(?:authentication|verification|identity check|security check|checks)"
    "|(?:grant|granted) (?:admin|full|elevated|root))"
)
_ROLE_MARKUP: list[tuple[str, re.Pattern[str]]] = [
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
