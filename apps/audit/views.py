"""`/metrics` for Prometheus: the whole installation's totals, whichever process answers the scrape.

The numbers name every tenant, so they are served only with METRICS_TOKEN, or without a token only to a
local development setup (apps/core/operators.py). Production settings refuse to start without the token;
this view refuses too, so that a settings module of someone's own cannot leave them open either.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.audit.metrics import metrics_render
from apps.core.errors import Forbidden, HelpdeskError, Unauthorized
from apps.core.operators import is_local_deployment, request_bears_token

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    # Both refusals come before Redis is touched: an unauthenticated caller learns nothing, not even
    # whether Redis is up.
    token: str | None = getattr(settings, "METRICS_TOKEN", None)
    if token:
        if not request_bears_token(request, token):
            response = _error(Unauthorized("A valid metrics token is required (Authorization: Bearer ...)."))
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    elif not is_local_deployment():
        return _error(
            Forbidden(
                "Metrics are not served: METRICS_TOKEN is not set on this server, and only a local "
                "development setup (DEBUG on, loopback-only ALLOWED_HOSTS) serves them without one."
            )
        )
    try:
        body = metrics_render()
    except HelpdeskError as error:
        return _error(error)
    return HttpResponse(body, content_type=CONTENT_TYPE)


def _error(error: HelpdeskError) -> JsonResponse:
    # JSON whatever the Accept header says: a scraper asks for text, and an HTML page would help nobody.
    response = JsonResponse(error.as_payload(), status=error.http_status)
    if error.http_status in (429, 503):
        response["Retry-After"] = str(error.retry_after or 5)
    return response
