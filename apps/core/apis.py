"""DRF glue: every API error leaves as `{"code", "message", "retryable"}` (CONTRACTS.md §1)."""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apps.core.errors import HelpdeskError, TemporarilyUnavailable

_DRF_CODES = {
    drf_exceptions.NotAuthenticated: "unauthorized",
    drf_exceptions.AuthenticationFailed: "unauthorized",
    drf_exceptions.PermissionDenied: "forbidden",
    drf_exceptions.NotFound: "not_found",
    drf_exceptions.Throttled: "rate_limited",
    drf_exceptions.MethodNotAllowed: "bad_request",
    drf_exceptions.ParseError: "bad_request",
    drf_exceptions.ValidationError: "bad_request",
    drf_exceptions.UnsupportedMediaType: "bad_request",
}


def _error_response(error: HelpdeskError) -> Response:
    headers = {}
    if error.http_status in (429, 503):
        headers["Retry-After"] = str(error.retry_after or 5)
    return Response(error.as_payload(), status=error.http_status, headers=headers)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, HelpdeskError):
        return _error_response(exc)
    if isinstance(exc, DatabaseError):
        return _error_response(TemporarilyUnavailable())
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, drf_exceptions.APIException):
        return response
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "bad_request")
    body: dict[str, Any] = {"code": code, "retryable": code == "rate_limited"}
    if isinstance(exc, drf_exceptions.ValidationError):
        body["message"] = "Some fields are invalid."
        body["fields"] = exc.detail
    else:
        body["message"] = str(exc.detail)
    response.data = body
    if isinstance(exc, drf_exceptions.NotAuthenticated | drf_exceptions.AuthenticationFailed):
        # Session authentication sends no challenge, so DRF would say 403; the contract says 401.
        response.status_code = 401
    if isinstance(exc, drf_exceptions.Throttled):
        response["Retry-After"] = str(int(getattr(exc, "wait", None) or 1))
    return response
