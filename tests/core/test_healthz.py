"""/healthz: one entry per part with status and latency (for an operator holding the token); 503 with
Retry-After when a required part is down. Who sees the details, and the kept report: test_healthz_access."""

from __future__ import annotations

import pytest
from celery.contrib.testing.worker import start_worker
from django.test import Client

from helpdesk.celery import app as celery_app
from tests.fakes.openai_server import FakeOpenAI

PARTS = ["database", "pgvector", "redis", "celery", "llm", "embeddings", "pii"]
TOKEN = "healthz-operator-token-3c9d"


@pytest.fixture
def operator(settings) -> Client:
    """The operator's monitoring: it holds the token, so it sees every check's details."""
    settings.HEALTHZ_TOKEN = TOKEN
    return Client(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")


@pytest.fixture(scope="module")
def celery_worker():
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10) as worker:
        yield worker


@pytest.fixture(scope="module", autouse=True)
def _embedder_loaded():
    from apps.llm.embeddings import embedder

    embedder().embed(["warm up"])
    from apps.guardrails.pii import pii_scan

    pii_scan("warm up")


@pytest.fixture
def fake_llm(settings):
    with FakeOpenAI(models=["test-model"]) as fake:
        settings.LLM_BASE_URL = fake.base_url
        settings.LLM_MODEL = "test-model"
        yield fake


@pytest.mark.django_db(transaction=True)
def test_all_parts_green(operator, celery_worker, fake_llm):
    response = operator.get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert sorted(body["checks"]) == sorted(PARTS)
    for name in PARTS:
        check = body["checks"][name]
        assert check["status"] == "ok", (name, check)
        assert check["required"] is True
        assert isinstance(check["latency_ms"], float)
        assert check["latency_ms"] >= 0
    assert body["checks"]["pgvector"]["detail"] == "pgvector 0.8.6"
    assert body["checks"]["llm"]["detail"] == "test-model"
    assert body["checks"]["embeddings"]["detail"] == "all-MiniLM-L6-v2 (384 dims, in-process)"
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.django_db(transaction=True)
def test_llm_unreachable_is_503_naming_the_part(operator, celery_worker, settings):
    settings.LLM_BASE_URL = "http://127.0.0.1:9/v1"
    response = operator.get("/healthz")
    body = response.json()
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert body["status"] == "down"
    assert body["checks"]["llm"]["status"] == "down"
    assert "cannot reach LLM_BASE_URL http://127.0.0.1:9/v1" in body["checks"]["llm"]["detail"]
    assert [n for n, c in body["checks"].items() if c["status"] != "ok"] == ["llm"]


@pytest.mark.django_db(transaction=True)
def test_llm_serving_another_model_is_down(operator, celery_worker, fake_llm, settings):
    settings.LLM_MODEL = "missing-model"
    body = operator.get("/healthz").json()
    assert body["checks"]["llm"]["status"] == "down"
    assert body["checks"]["llm"]["detail"] == (
        f"LLM_MODEL 'missing-model' is not served at {fake_llm.base_url} (it serves: test-model)"
    )


@pytest.mark.django_db(transaction=True)
def test_llm_5xx_is_down(operator, celery_worker, fake_llm):
    fake_llm.behaviour = "error_500"
    body = operator.get("/healthz").json()
    assert body["checks"]["llm"] == {
        "status": "down",
        "required": True,
        "latency_ms": body["checks"]["llm"]["latency_ms"],
        "detail": f"LLM server answered HTTP 500 at {fake_llm.base_url}",
    }


@pytest.mark.django_db(transaction=True)
def test_hung_part_is_bounded_by_the_timeout(operator, celery_worker, fake_llm, settings):
    settings.HEALTH_CHECK_TIMEOUT_SECONDS = 1.0
    fake_llm.behaviour = "hang"
    fake_llm.hang_seconds = 5
    response = operator.get("/healthz")
    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["llm"]["status"] == "down"
    assert body["checks"]["llm"]["detail"] == "no answer within 1s"
    assert body["checks"]["database"]["status"] == "ok"


@pytest.mark.django_db(transaction=True)
def test_remote_embeddings_endpoint_is_used_when_configured(operator, celery_worker, fake_llm, settings):
    settings.EMBEDDINGS_BASE_URL = fake_llm.base_url
    settings.EMBEDDINGS_MODEL = "remote-embedder"
    body = operator.get("/healthz").json()
    assert body["checks"]["embeddings"]["status"] == "ok"
    assert body["checks"]["embeddings"]["detail"] == f"remote-embedder (384 dims, {fake_llm.base_url})"
    assert ("POST", "/v1/embeddings", {"model": "remote-embedder", "input": ["health check"]}) in [
        (m, p, {k: b[k] for k in ("model", "input")} if b else None) for m, p, b in fake_llm.requests
    ]


def test_healthz_rejects_post(client):
    assert client.post("/healthz").status_code == 405


@pytest.mark.django_db(transaction=True)
def test_embeddings_report_loading_until_the_model_is_in_memory(operator, celery_worker, fake_llm, settings):
    from apps.llm import embeddings

    settings.EMBEDDINGS_MODEL = "all-MiniLM-L6-v2-fresh"  # a new embedder instance: nothing loaded yet
    settings.HEALTHZ_DOWN_CACHE_SECONDS = 0.0  # the next request sees the recovery at once
    fresh = embeddings.embedder()
    assert isinstance(fresh, embeddings.LocalEmbedder)
    assert not fresh.loaded
    body = operator.get("/healthz").json()
    assert body["checks"]["embeddings"]["status"] == "down"
    assert body["checks"]["embeddings"]["detail"].startswith(
        "loading the in-process model all-MiniLM-L6-v2-fresh"
    )
    fresh.embed(["wait for the load"])
    body = operator.get("/healthz").json()
    assert body["checks"]["embeddings"]["status"] == "ok"


def test_the_suite_runs_on_test_settings(settings):
    # Importing `helpdesk` defaults DJANGO_SETTINGS_MODULE to local; the harness must win that race.
    assert settings.SETTINGS_MODULE == "helpdesk.settings.test"
    assert settings.PASSWORD_HASHERS == ["django.contrib.auth.hashers.MD5PasswordHasher"]
