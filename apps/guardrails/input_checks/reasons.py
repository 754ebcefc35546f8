"""What a check decides: the verdict and its stable reason codes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
