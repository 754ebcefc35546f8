"""The Celery application. Settings prefixed CELERY_ in Django settings configure it."""

import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings.local")

app = Celery("helpdesk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _reembed_after_a_model_change(sender: object, **kwargs: object) -> None:
    # A changed EMBEDDINGS_MODEL takes effect when workers restart; re-embedding then starts by itself.
    # The task is a no-op when every passage already has vectors of the configured model.
    app.send_task("apps.knowledge.tasks.chunks_reembed")
