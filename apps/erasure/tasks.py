"""Celery interfaces of erasure: ids in, one service call (STYLE rule 9).

`acks_late`: a worker killed mid-run leaves the message unacknowledged, the broker delivers it again, and
the run resumes at the first step the request has not recorded. A step that failed (the database or Redis
away) is retried with backoff; after the last retry the startup sweep or the command picks it up.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from apps.core.errors import NotFound
from apps.erasure import services


@shared_task(bind=True, acks_late=True, max_retries=8, soft_time_limit=600, time_limit=900)
def erasure_run(self: Any, request_id: str) -> str:
    try:
        request = services.erasure_request_run(request_id=request_id)
    except NotFound:
        return "gone"
    except Exception as exc:
        raise self.retry(exc=exc, countdown=min(300, 5 * 2**self.request.retries)) from None
    return str(request.state)


@shared_task(acks_late=True, soft_time_limit=600, time_limit=900)
def erasures_resume() -> int:
    return services.erasures_resume()
