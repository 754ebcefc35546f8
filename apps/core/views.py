from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.core.health import health_report


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    report = health_report()
    body = {
        "status": "ok" if report.ok else "down",
        "checks": {
            r.name: {
                "status": "ok" if r.ok else "down",
                "required": r.required,
                "latency_ms": r.latency_ms,
                "detail": r.detail,
            }
            for r in report.results
        },
    }
    response = JsonResponse(body, status=200 if report.ok else 503)
    if not report.ok:
        response["Retry-After"] = "5"
    return response
