"""GET /metrics over real HTTP through Django: content type, caching, the token (required everywhere but
a local development setup), and Redis down."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.audit.metrics import abstention_count, metrics_render
from apps.core.errors import Forbidden, TemporarilyUnavailable, Unauthorized
from tests.audit.exposition import parse

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TOKEN = "s3cret-metrics-token"
# The bodies every other HTTP error of the product has (apps/core/errors.py).
UNAUTHORIZED = Unauthorized("A valid metrics token is required (Authorization: Bearer ...).").as_payload()
NO_TOKEN_CONFIGURED = Forbidden(
    "Metrics are not served: METRICS_TOKEN is not set on this server, and only a local development setup "
    "(DEBUG on, loopback-only ALLOWED_HOSTS) serves them without one."
).as_payload()
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
UNAVAILABLE = TemporarilyUnavailable(
    "Metrics are briefly unavailable: their store does not answer.", retry_after=5
).as_payload()


@pytest.fixture
def scraper(settings) -> Client:
    """Prometheus: the token configured on the server and sent with every scrape."""
    settings.METRICS_TOKEN = TOKEN
    return Client(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")


def test_metrics_are_served_as_text_and_never_cached(scraper):
    abstention_count(tenant="tenant-a")
    response = scraper.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"] == CONTENT_TYPE
    assert response["Cache-Control"] == "max-age=0, no-cache, no-store, must-revalidate, private"
    assert response.content.decode() == metrics_render()
    assert (
        parse(response.content.decode()).value("helpdesk_assistant_abstentions_total", tenant="tenant-a")
        == 1.0
    )


def test_a_prometheus_accept_header_still_gets_text(scraper):
    response = scraper.get(
        "/metrics", HTTP_ACCEPT="application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    )
    assert (response.status_code, response["Content-Type"]) == (200, CONTENT_TYPE)


def test_only_get(scraper):
    assert scraper.post("/metrics").status_code == 405


@pytest.mark.parametrize(
    ("debug", "allowed_hosts", "host"),
    [
        (False, LOOPBACK_HOSTS, "localhost"),  # not debug, even though it answers only on loopback
        (True, ["support.example.com"], "support.example.com"),
        (True, ["127.0.0.1", "support.example.com"], "127.0.0.1"),
        (True, ["*"], "localhost"),
        (True, [".example.com"], "support.example.com"),
        (True, ["127.0.0.1.nip.io"], "127.0.0.1.nip.io"),
        (True, ["localhost.example.com"], "localhost.example.com"),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer whatever"])
def test_without_a_configured_token_only_a_local_setup_serves_metrics(
    settings, redis_down, debug, allowed_hosts, host, authorization
):
    settings.METRICS_TOKEN = None
    settings.DEBUG = debug
    settings.ALLOWED_HOSTS = allowed_hosts
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    response = Client().get("/metrics", HTTP_HOST=host, **headers)
    # Refused before Redis is asked (it is down here: a 503 would mean it was).
    assert response.status_code == 403
    assert response.json() == NO_TOKEN_CONFIGURED
    assert (NO_TOKEN_CONFIGURED["code"], NO_TOKEN_CONFIGURED["retryable"]) == ("forbidden", False)
    assert response["Cache-Control"] == "max-age=0, no-cache, no-store, must-revalidate, private"


@pytest.mark.parametrize(
    "allowed_hosts",
    [LOOPBACK_HOSTS, ["localhost"], ["127.0.0.2", ".localhost", "[0:0::1]"], ["::1", "localhost"], []],
)
def test_make_run_serves_metrics_on_loopback_without_a_token(settings, allowed_hosts):
    # What `make run` is: local settings (DEBUG on), the default loopback-only ALLOWED_HOSTS, no token.
    settings.METRICS_TOKEN = None
    settings.DEBUG = True
    settings.ALLOWED_HOSTS = allowed_hosts
    abstention_count(tenant="tenant-a")
    response = Client().get("/metrics", HTTP_HOST="localhost")
    assert (response.status_code, response["Content-Type"]) == (200, CONTENT_TYPE)
    assert 'helpdesk_assistant_abstentions_total{tenant="tenant-a"} 1\n' in response.content.decode()


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


def test_redis_down_is_503_with_retry_after(scraper, redis_down):
    response = scraper.get("/metrics", HTTP_ACCEPT="text/plain")
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
