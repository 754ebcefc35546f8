"""The handoff API in the OpenAPI schema (/api/schema/): every path with its methods, the queue row as the
API really renders it, and a schema generation that has nothing to warn about in apps/handoff."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator

from apps.handoff import selectors
from tests.handoff.api_fixtures import queued

pytestmark = pytest.mark.django_db

T = "/api/v1/tenants/{slug}"
HANDOFF_PATHS = {
    f"{T}/handoffs/": {"get"},
    f"{T}/handoffs/{{handoff_id}}/": {"get"},
    f"{T}/handoffs/{{handoff_id}}/claim/": {"post"},
    f"{T}/handoffs/{{handoff_id}}/case-file/": {"post"},
    f"{T}/conversations/{{conversation_id}}/timeline/": {"get"},
    f"{T}/contacts/{{contact_id}}/timeline/": {"get"},
    f"{T}/conversations/{{conversation_id}}/take-over/": {"post"},
    f"{T}/conversations/{{conversation_id}}/transfer/": {"post"},
    f"{T}/conversations/{{conversation_id}}/hand-back/": {"post"},
    f"{T}/conversations/{{conversation_id}}/resolve/": {"post"},
    f"{T}/conversations/{{conversation_id}}/replies/": {"post"},
    f"{T}/conversations/{{conversation_id}}/notes/": {"post"},
    f"{T}/canned-responses/": {"get", "post"},
    f"{T}/canned-responses/{{canned_id}}/": {"patch", "delete"},
    f"{T}/presence/": {"post"},
    f"{T}/tickets/": {"get"},
    f"{T}/handoff-settings/": {"get", "put"},
    f"{T}/handoff-rules/": {"get", "post"},
    f"{T}/handoff-rules/{{rule_id}}/": {"delete"},
    f"{T}/teams/": {"get", "post"},
    "/api/v1/inbound-email/": {"post"},
}
METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture
def generator_stats() -> Iterator[None]:
    """drf-spectacular counts warnings in a process-wide cache: start and leave it empty."""
    GENERATOR_STATS.reset()
    yield
    GENERATOR_STATS.reset()


def test_the_schema_lists_every_handoff_path_with_its_methods(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {path: set(paths.get(path, {})) & METHODS for path in HANDOFF_PATHS} == HANDOFF_PATHS


def test_the_queue_row_in_the_schema_is_the_row_the_api_renders(client, tenant_a):
    handoff = queued(tenant_a.tenant)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    components = schema["components"]["schemas"]

    summary = selectors.handoff_summary(handoff)

    assert set(components["HandoffSummaryOutput"]["properties"]) == set(summary)
    assert set(components["HandoffDetailOutput"]["properties"]) == {*summary, "case_file"}
    assert set(components["HandoffQueue"]["properties"]) == {
        "waiting",
        "mine",
        "others",
        "agents",
        "me",
        "teams",
    }
    queue = schema["paths"][f"{T}/handoffs/"]["get"]["responses"]["200"]["content"]["application/json"]
    assert queue["schema"] == {"$ref": "#/components/schemas/HandoffQueue"}


def test_generating_the_schema_warns_about_nothing_in_the_handoff_app(generator_stats):
    schema = SchemaGenerator().get_schema(request=None, public=True)

    assert set(HANDOFF_PATHS) <= set(schema["paths"])
    found = [*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache]
    ours = [
        message
        for message in found
        if "apps/handoff" in message
        or "apps.handoff" in message
        or any(path.replace(T, "") in message for path in HANDOFF_PATHS if path.startswith(T))
        or "inbound-email" in message
    ]
    assert ours == []
