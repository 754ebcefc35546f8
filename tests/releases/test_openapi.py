"""The releases app's API in the OpenAPI schema: golden answers, gated knowledge changes, model endpoints,
canaries; every path and method, so an endpoint added or removed is noticed."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_the_schema_lists_every_releases_path(api_anonymous) -> None:
    schema = api_anonymous.get("/api/schema/", {"format": "json"}).json()
    paths = {
        path: sorted(m for m in ops if m in {"get", "post", "put", "patch", "delete"})
        for path, ops in schema["paths"].items()
        if any(f"/{part}/" in path for part in ("golden", "model-endpoints", "canaries", "changes"))
    }
    assert paths == {
        "/api/v1/tenants/{slug}/golden/questions/": ["get", "post"],
        "/api/v1/tenants/{slug}/golden/questions/{question_id}/": ["delete", "get", "patch"],
        "/api/v1/tenants/{slug}/golden/runs/": ["get", "post"],
        "/api/v1/tenants/{slug}/golden/runs/{run_id}/": ["get"],
        "/api/v1/tenants/{slug}/kb/changes/{change_id}/": ["get"],
        "/api/v1/tenants/{slug}/kb/changes/{change_id}/confirm/": ["post"],
        "/api/v1/tenants/{slug}/kb/changes/{change_id}/cancel/": ["post"],
        "/api/v1/tenants/{slug}/model-endpoints/": ["get", "post"],
        "/api/v1/tenants/{slug}/model-endpoints/{endpoint_id}/": ["delete", "get"],
        "/api/v1/tenants/{slug}/canaries/": ["get", "post"],
        "/api/v1/tenants/{slug}/canaries/{canary_id}/": ["get"],
        "/api/v1/tenants/{slug}/canaries/{canary_id}/promote/": ["post"],
        "/api/v1/tenants/{slug}/canaries/{canary_id}/stop/": ["post"],
    }
