"""Kept apart from test_healthz.py, whose module-scoped Celery worker would answer the ping."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.fakes.openai_server import FakeOpenAI


@pytest.mark.django_db(transaction=True)
def test_no_celery_worker_is_503(settings):
    settings.HEALTHZ_TOKEN = "healthz-operator-token"
    with FakeOpenAI(models=["test-model"]) as fake:
        settings.LLM_BASE_URL = fake.base_url
        settings.LLM_MODEL = "test-model"
        response = Client().get("/healthz", HTTP_AUTHORIZATION="Bearer healthz-operator-token")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "down"
    assert body["checks"]["celery"]["status"] == "down"
    assert body["checks"]["celery"]["detail"] == (
        "no Celery worker answered a ping: start one with `celery -A helpdesk worker`"
    )
