"""How the business system says no. Codes are stable: the tools layer passes them on unchanged."""

from __future__ import annotations


class TelcoError(Exception):
    """A refusal with a stable code: not_found, invalid_plan, same_plan, idempotency_conflict."""

    def __init__(self, code: str, message: str = "") -> None:
        self.code = code
        self.message = message or code.replace("_", " ")
        super().__init__(f"{code}: {self.message}")
