"""The Celery application. Settings prefixed CELERY_ in Django settings configure it."""

import os

from celery import Celery
from celery.signals import worker_init, worker_process_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings.local")

app = Celery("helpdesk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
@worker_process_init.connect
def _tracing(**kwargs: object) -> None:
    """Traces in every worker process (docs/architecture/tracing.md). Set up once per process: prefork
    children inherit the main process's (the OTLP exporter restarts its thread after a fork)."""
    from apps.core.tracing import tracing_setup

    tracing_setup()


def _consumed_queues(consumer: object) -> set[str] | None:
    """The queues a starting worker consumes (None when Celery does not tell)."""
    try:
        return {queue.name for queue in consumer.task_consumer.queues}  # type: ignore[attr-defined]
    except Exception:
        return None


@worker_ready.connect
def _catch_up_after_start(sender: object, **kwargs: object) -> None:
    queues = _consumed_queues(sender)
    # Each catch-up goes to a queue the starting worker serves, so a worker of one queue does not pile up
    # work for another.
    if queues is None or "celery" in queues:
        # A changed EMBEDDINGS_MODEL takes effect when workers restart; re-embedding then starts by itself.
        # The task is a no-op when every passage already has vectors of the configured model.
        app.send_task("apps.knowledge.tasks.chunks_reembed")
        # Channel deliveries whose send task was lost (a worker killed mid-retry) go out again, once each.
        app.send_task("apps.conversations.tasks.channel_deliveries_resend_due")
        # Customer erasures a killed worker left half done resume at their first unrecorded step.
        app.send_task("apps.erasure.tasks.erasures_resume")
    if queues is None or "tools" in queues:
        # Tool runs a lost message or a killed worker left queued or running past their lease run again
        # (idempotently: the business system sees the same key).
        app.send_task("apps.tools.tasks.tool_runs_recover")
    if queues is None or "handoff" in queues:
        # Escalation checks scheduled before a restart may be lost with the worker: catch up on them.
        app.send_task("apps.handoff.tasks.handoffs_escalate_due")
