"""The helpdesk project package: settings, ASGI/Celery entry points and the local stack supervisor."""

from helpdesk.celery import app as celery_app

__all__ = ["celery_app"]
