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

Modules, by reason: normalise (the two views), rules (how a phrase rule is written, compiled, matched),
override, reveal, persona, tools, exfiltration, abuse (each one family's rules), markup (role markup),
encoded (hidden and encoded payloads), detect (`input_check`), untrusted (`neutralize_untrusted`).
"""

from __future__ import annotations

from .detect import input_check
from .reasons import ABUSE_REASONS, INJECTION_REASONS, Action, InputVerdict
from .untrusted import neutralize_untrusted

__all__ = [
    "ABUSE_REASONS",
    "INJECTION_REASONS",
    "Action",
    "InputVerdict",
    "input_check",
    "neutralize_untrusted",
]
