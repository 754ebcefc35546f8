"""One error hierarchy with stable codes, rendered the same over HTTP and websockets (CONTRACTS.md §1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apps.core.event_types import ErrorFrame


class HelpdeskError(Exception):
    code = "bad_request"
    http_status = 400
    retryable = False
    default_message = "The request could not be processed."

    def __init__(self, message: str | None = None, *, retry_after: int | None = None) -> None:
        self.message = message or self.default_message
        self.retry_after = retry_after
        super().__init__(self.message)

    def as_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"code": self.code, "message": self.message, "retryable": self.retryable}
        if self.retry_after is not None:
            payload["retry_after"] = self.retry_after
        return payload


class BadRequest(HelpdeskError):
    pass


class Unauthorized(HelpdeskError):
    code = "unauthorized"
    http_status = 401
    default_message = "Please sign in to continue."


class Forbidden(HelpdeskError):
    code = "forbidden"
    http_status = 403
    default_message = "You don't have permission to do that."


class NotFound(HelpdeskError):
    code = "not_found"
    http_status = 404
    default_message = "That doesn't exist, or you can't see it."


class Conflict(HelpdeskError):
    code = "conflict"
    http_status = 409
    default_message = "Someone else changed this first. Reload and try again."


class RateLimited(HelpdeskError):
    code = "rate_limited"
    http_status = 429
    retryable = True
    default_message = "Too many requests. Please wait a moment and try again."


class MessageTooLong(HelpdeskError):
    code = "message_too_long"
    http_status = 413
    default_message = "That message is too long. Please shorten it."


class LLMUnavailable(HelpdeskError):
    code = "llm_unavailable"
    http_status = 503
    retryable = True
    default_message = "The assistant is unavailable right now. You can ask for a person instead."


class TemporarilyUnavailable(HelpdeskError):
    code = "temporarily_unavailable"
    http_status = 503
    retryable = True
    default_message = "The service is briefly unavailable. Please try again in a few seconds."


class Interrupted(HelpdeskError):
    code = "interrupted"
    http_status = 503
    retryable = True
    default_message = "The answer was interrupted. Please try again."


@dataclass(frozen=True)
class WebsocketClose:
    """Close codes of CONTRACTS.md §1. Daphne delivers the RFC 6455 ones only because of
    helpdesk/daphne_close_codes.py (autobahn alone lets an application send 1000 and 3000-4999)."""

    POLICY = 1008
    TOO_BIG = 1009
    SERVER_ERROR = 1011
    # The service cannot serve this socket just now (the database is down): reconnect in a few seconds.
    TRY_AGAIN_LATER = 1013
    # Too many connections from one address, or frames past the budget: reconnect, but not before the
    # window has passed. Kept apart from 1013 (which retries within seconds) because the widget waits at
    # least 30 s on this code; 4429 predates 1013 reaching clients, and widgets in the field expect it.
    RATE_LIMITED = 4429
    UNAUTHENTICATED = 4401
    FORBIDDEN = 4403


def error_frame(error: HelpdeskError, *, client_msg_id: str | None = None) -> dict[str, Any]:
    return ErrorFrame.model_validate({**error.as_payload(), "client_msg_id": client_msg_id}).payload()
