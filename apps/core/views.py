"""`/healthz`: the overall status for anyone (load balancers, container health checks), and each check's
details for the platform's staff and for monitoring that holds a token.

The details name software versions, worker host names and the text of whatever failed, which tells an
attacker what to aim at, so anonymous callers never see them.
"""

from __future__ import annotations

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.core.health import HealthReport, health_report_cached
from apps.core.operators import request_bears_token

RETRY_AFTER_SECONDS = 5


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    report = health_report_cached()
    body: dict[str, object] = {"status": "ok" if report.ok else "down"}
    if _may_see_details(request):
        body["checks"] = _details(report)
    response = JsonResponse(body, status=200 if report.ok else 503)
    if not report.ok:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _may_see_details(request: HttpRequest) -> bool:
    # A wrong or missing token is not refused: the overall status is public, and a load balancer must get
    # it whatever it sends.
    if request_bears_token(request, settings.HEALTHZ_TOKEN, settings.METRICS_TOKEN):
        return True
    try:
        return bool(request.user.is_authenticated and request.user.is_staff)
    except DatabaseError:
        # The session lives in the database, which may be the very part that is down: the status still
        # answers, and the token still shows why.
        return False


def _details(report: HealthReport) -> dict[str, dict[str, object]]:
    return {
        r.name: {
            "status": "ok" if r.ok else "down",
            "required": r.required,
            "latency_ms": r.latency_ms,
            "detail": r.detail,
        }
        for r in report.results
    }
