from typing import Any

from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "apps.conversations"
    label = "conversations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.conversations import hooks
        from apps.conversations.assistant import assistant_cancel_local
        from apps.conversations.tool_services import tool_run_record
        from apps.tools.hooks import run_listener_add

        run_listener_add(tool_run_record)

        from apps.conversations.channels.builtin import builtin_channels_register

        builtin_channels_register()
        hooks.reply_cancel_listener_add(assistant_cancel_local)

        from apps.conversations.turn_trace import turn_spans_late
        from apps.core.tracing import turn_spans_sink_set

        # Spans a worker records for a turn (a tool run, the case file) join the reply (turn_trace.py).
        turn_spans_sink_set(turn_spans_late)

        from celery.signals import worker_process_init

        worker_process_init.connect(_warm_up_answering_worker, weak=False)


def _warm_up_answering_worker(**kwargs: Any) -> None:
    """A worker process of the default queue answers conversations of channels that do not stream (email,
    messaging): it loads the embedding model and redaction as it starts, so the first SMS of the day is not
    answered 12 s late."""
    from helpdesk.celery import app

    if "celery" in set(getattr(app.amqp.queues, "consume_from", None) or ()):
        from apps.guardrails.pii import pii_warm_up
        from apps.llm.embeddings import warm_up

        warm_up()
        pii_warm_up()
