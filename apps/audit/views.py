"""`/metrics` for Prometheus: the whole installation's totals, whichever process answers the scrape."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.audit.metrics import metrics_render
from apps.core.errors import HelpdeskError, Unauthorized

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    token: str | None = getattr(settings, "METRICS_TOKEN", None)
    if token and not _bearer_matches(request.headers.get("Authorization", ""), token):
        response = _error(Unauthorized("A valid metrics token is required (Authorization: Bearer ...)."))
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    try:
        body = metrics_render()
    except HelpdeskError as error:
        return _error(error)
    return HttpResponse(body, content_type=CONTENT_TYPE)


def _bearer_matches(header: str, token: str) -> bool:
    scheme, _, presented = header.partition(" ")
    # Compared as bytes: compare_digest takes str only when it is ASCII, and a header need not be.
    matches = hmac.compare_digest(presented.strip().encode(), token.encode())
    return scheme.lower() == "bearer" and matches


def _error(error: HelpdeskError) -> JsonResponse:
    # JSON whatever the Accept header says: a scraper asks for text, and an HTML page would help nobody.
    response = JsonResponse(error.as_payload(), status=error.http_status)
    if error.http_status in (429, 503):
        response["Retry-After"] = str(error.retry_after or 5)
    return response
