"""Renders the error hierarchy for server-rendered pages: a page a person can act on, never a traceback."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.contrib.auth.views import redirect_to_login
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from apps.core.errors import HelpdeskError, NotFound, TemporarilyUnavailable, Unauthorized

logger = logging.getLogger(__name__)


class HelpdeskErrorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, OperationalError | InterfaceError):
            logger.warning("database unavailable on %s: %s", request.path, exception.__class__.__name__)
            exception = TemporarilyUnavailable()
        if not isinstance(exception, HelpdeskError):
            return None
        if isinstance(exception, Unauthorized) and not _wants_json(request):
            return redirect_to_login(request.get_full_path())
        if _wants_json(request):
            response: HttpResponse = JsonResponse(exception.as_payload(), status=exception.http_status)
        else:
            response = render(request, "error.html", {"error": exception}, status=exception.http_status)
        if exception.http_status in (429, 503):
            response["Retry-After"] = str(exception.retry_after or 5)
        return response


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler404: the same `not_found` error as everywhere else, JSON under /api/."""
    error = NotFound()
    if _wants_json(request):
        return JsonResponse(error.as_payload(), status=404)
    return render(request, "error.html", {"error": error}, status=404)
