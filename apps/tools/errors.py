"""How an adapter call fails. Only transient failures are retried; the rest end the run at once."""

from __future__ import annotations


class AdapterError(Exception):
    """The business system answered, and the answer is no (unknown order, invalid plan...)."""

    transient = False

    def __init__(self, code: str, message: str = "") -> None:
        self.code = code
        self.message = message or code.replace("_", " ")
        super().__init__(f"{code}: {self.message}")


class TransientAdapterError(AdapterError):
    """Worth another try: a timeout, a refused connection, a 5xx, a 429."""

    transient = True


class AdapterUnavailable(AdapterError):
    """The adapter's circuit is open: not called at all, the customer is told and offered a person."""

    def __init__(self, message: str = "the business system is not answering") -> None:
        super().__init__("unavailable", message)
