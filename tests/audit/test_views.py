"""GET /metrics over real HTTP through Django: content type, caching, the token, and Redis down."""

from __future__ import annotations

import pytest

from apps.audit.metrics import abstention_count, metrics_render
from apps.core.errors import TemporarilyUnavailable, Unauthorized
from tests.audit.exposition import parse

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TOKEN = "s3cret-metrics-token"
# The bodies every other HTTP error of the product has (apps/core/errors.py).
UNAUTHORIZED = Unauthorized("A valid metrics token is required (Authorization: Bearer ...).").as_payload()
UNAVAILABLE = TemporarilyUnavailable(
    "Metrics are briefly unavailable: their store does not answer.", retry_after=5
).as_payload()


def test_metrics_are_served_as_text_and_never_cached(client):
    abstention_count(tenant="tenant-a")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"] == CONTENT_TYPE
    assert response["Cache-Control"] == "max-age=0, no-cache, no-store, must-revalidate, private"
    assert response.content.decode() == metrics_render()
    assert (
        parse(response.content.decode()).value("helpdesk_assistant_abstentions_total", tenant="tenant-a")
        == 1.0
    )


def test_a_prometheus_accept_header_still_gets_text(client):
    response = client.get(
        "/metrics", HTTP_ACCEPT="application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    )
    assert (response.status_code, response["Content-Type"]) == (200, CONTENT_TYPE)


def test_only_get(client):
    assert client.post("/metrics").status_code == 405


def test_without_a_configured_token_any_authorization_is_ignored(client, settings):
    settings.METRICS_TOKEN = None
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer whatever").status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer wrong-token",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Basic {TOKEN}",
        TOKEN,
        "Bearer s3cret-metrics-tokén",
    ],
)
def test_a_configured_token_is_required(client, settings, authorization):
    settings.METRICS_TOKEN = TOKEN
    abstention_count(tenant="tenant-a")
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    response = client.get("/metrics", **headers)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert (UNAUTHORIZED["code"], UNAUTHORIZED["retryable"]) == ("unauthorized", False)
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert "helpdesk_" not in response.content.decode()
    assert response["Cache-Control"] == "max-age=0, no-cache, no-store, must-revalidate, private"


@pytest.mark.parametrize("authorization", [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"Bearer  {TOKEN} "])
def test_the_right_token_is_accepted(client, settings, authorization):
    settings.METRICS_TOKEN = TOKEN
    abstention_count(tenant="tenant-a")
    response = client.get("/metrics", HTTP_AUTHORIZATION=authorization)
    assert (response.status_code, response["Content-Type"]) == (200, CONTENT_TYPE)
    assert 'helpdesk_assistant_abstentions_total{tenant="tenant-a"} 1\n' in response.content.decode()


def test_redis_down_is_503_with_retry_after(client, redis_down):
    response = client.get("/metrics", HTTP_ACCEPT="text/plain")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response["Content-Type"] == "application/json"
    assert response.json() == UNAVAILABLE
    assert (UNAVAILABLE["code"], UNAVAILABLE["retryable"]) == ("temporarily_unavailable", True)
    assert response["Cache-Control"] == "max-age=0, no-cache, no-store, must-revalidate, private"


def test_redis_down_is_checked_after_the_token(client, settings, redis_down):
    settings.METRICS_TOKEN = TOKEN
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 503
