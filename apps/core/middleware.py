"""Renders the error hierarchy for server-rendered pages: a page a person can act on, never a traceback."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from apps.core.errors import HelpdeskError, Unauthorized


class HelpdeskErrorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
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
