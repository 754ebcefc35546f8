"""The API and the management command: admins only; another company's customer, an unknown one or an
unknown request is a 404 and changes nothing."""

from __future__ import annotations

import uuid
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from apps.audit.models import AuditEvent
from apps.conversations.models import Conversation
from apps.erasure import services
from apps.erasure.models import ErasureRequest
from apps.erasure.steps import STEP_NAMES
from tests.conftest import TenantStaff
from tests.erasure.planting import Planted, database_hits, plant_customer

pytestmark = pytest.mark.django_db


def _url(slug: str, erasure_id: str = "") -> str:
    return f"/api/v1/tenants/{slug}/erasures/" + (f"{erasure_id}/" if erasure_id else "")


def _unchanged(planted: Planted) -> dict[str, int]:
    return database_hits(planted.marker)


def test_admin_erases_from_a_conversation_and_follows_the_request(
    tenant_a: TenantStaff, api_admin_a: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    planted = plant_customer(tenant_a.tenant, tenant_a.agent)
    widget = planted.conversations[0]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_admin_a.post(_url(tenant_a.slug), {"conversation": str(widget.id)}, format="json")

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["state"] == "pending"
    assert body["subject_kind"] == "contact"
    assert body["steps"] == []
    assert body["steps_pending"] == list(STEP_NAMES)
    assert len(callbacks) == 1  # the Celery task, queued once the request commits
    services.erasure_request_run(request_id=body["id"])  # what the worker does

    detail = api_admin_a.get(_url(tenant_a.slug, body["id"]))
    assert detail.status_code == 200
    done = detail.json()
    assert done["state"] == "done"
    assert done["steps"] == list(STEP_NAMES)
    assert done["steps_pending"] == []
    assert (done["counts"]["messages"], done["counts"]["contacts"]) == (4, 1)
    assert database_hits(planted.marker) == {}


def test_erasure_by_visitor_and_by_address(tenant_a: TenantStaff, api_admin_a: APIClient) -> None:
    planted = plant_customer(tenant_a.tenant, tenant_a.agent)
    widget, sms = planted.conversations
    by_address = api_admin_a.post(_url(tenant_a.slug), {"address": planted.phone}, format="json")
    by_visitor = api_admin_a.post(_url(tenant_a.slug), {"visitor": str(planted.visitor_id)}, format="json")
    assert (by_address.status_code, by_visitor.status_code) == (202, 202)
    services.erasure_request_run(request_id=by_address.json()["id"])
    assert not Conversation.objects.filter(id=sms.id).exists()
    assert Conversation.objects.filter(id=widget.id).exists()  # the phone number names the text thread only
    services.erasure_request_run(request_id=by_visitor.json()["id"])
    assert not Conversation.objects.filter(id=widget.id).exists()
    # The contact record itself is erased only when the customer is named as the contact.
    assert database_hits(planted.marker) == {
        "accounts.Contact.external_id": 1,
        "accounts.Contact.name": 1,
        "accounts.Contact.email": 1,
    }


@pytest.mark.parametrize(
    "payload",
    [
        {"contact": "nobody-here"},
        {"visitor": str(uuid.uuid4())},
        {"address": "+4400000000"},
        {"conversation": str(uuid.uuid4())},
        {"conversation": "not-a-uuid"},
    ],
)
def test_unknown_customer_is_404_and_nothing_changes(
    tenant_a: TenantStaff, api_admin_a: APIClient, payload: dict[str, str]
) -> None:
    planted = plant_customer(tenant_a.tenant, tenant_a.agent)
    before = _unchanged(planted)
    response = api_admin_a.post(_url(tenant_a.slug), payload, format="json")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert not ErasureRequest.objects.exists()
    assert _unchanged(planted) == before


def test_another_companys_customer_is_404_and_nothing_changes(
    tenant_a: TenantStaff, tenant_b: TenantStaff, api_admin_b: APIClient
) -> None:
    planted = plant_customer(tenant_a.tenant, tenant_a.agent)
    before = _unchanged(planted)
    for payload in (
        {"contact": planted.contact.external_id},
        {"visitor": str(planted.visitor_id)},
        {"address": planted.phone},
        {"conversation": str(planted.conversations[0].id)},
    ):
        response = api_admin_b.post(_url(tenant_b.slug), payload, format="json")
        assert response.status_code == 404, payload
    # Nor through the other company's address, where admin_b is no member.
    assert (
        api_admin_b.post(
            _url(tenant_a.slug), {"contact": planted.contact.external_id}, format="json"
        ).status_code
        == 404
    )
    assert not ErasureRequest.objects.exists()
    assert not AuditEvent.objects.filter(action="customer.erase").exists()
    assert _unchanged(planted) == before


def test_another_companys_request_is_404(
    tenant_a: TenantStaff, tenant_b: TenantStaff, api_admin_a: APIClient, api_admin_b: APIClient
) -> None:
    planted = plant_customer(tenant_a.tenant, tenant_a.agent)
    created = api_admin_a.post(
        _url(tenant_a.slug), {"contact": planted.contact.external_id}, format="json"
    ).json()
    assert api_admin_b.get(_url(tenant_b.slug, created["id"])).status_code == 404
    assert api_admin_b.get(_url(tenant_a.slug, created["id"])).status_code == 404
    assert api_admin_a.get(_url(tenant_a.slug, str(uuid.uuid4()))).status_code == 404
    assert api_admin_a.get(_url(tenant_a.slug, "nope")).status_code == 404


def test_only_admins_erase(tenant_a: TenantStaff, api_agent_a: APIClient, api_editor_a: APIClient) -> None:
    planted = plant_customer(tenant_a.tenant, tenant_a.agent)
    for client in (api_agent_a, api_editor_a):
        response = client.post(_url(tenant_a.slug), {"contact": planted.contact.external_id}, format="json")
        assert response.status_code == 403
    assert not ErasureRequest.objects.exists()


@pytest.mark.parametrize(
    "payload",
    [{}, {"contact": "a", "visitor": str(uuid.uuid4())}, {"visitor": "not-a-uuid"}],
)
def test_a_request_naming_nobody_or_two_is_refused(
    tenant_a: TenantStaff, api_admin_a: APIClient, payload: dict[str, str]
) -> None:
    response = api_admin_a.post(_url(tenant_a.slug), payload, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"
    assert not ErasureRequest.objects.exists()


def test_command_erases_and_prints_the_report(tenant_a: TenantStaff) -> None:
    planted = plant_customer(tenant_a.tenant, tenant_a.agent)
    out = StringIO()
    call_command(
        "customer_erase", "--tenant", tenant_a.slug, "--contact", planted.contact.external_id, stdout=out
    )
    report = out.getvalue()
    request = ErasureRequest.objects.get()
    assert report.splitlines()[0] == f"erasure {request.id}: done"
    assert f"steps done: {', '.join(STEP_NAMES)}" in report
    assert "  messages         4" in report.splitlines()
    assert planted.contact.external_id not in report
    assert database_hits(planted.marker) == {}


def test_command_refuses_an_unknown_customer_or_company(tenant_a: TenantStaff) -> None:
    with pytest.raises(CommandError, match="not_found"):
        call_command("customer_erase", "--tenant", tenant_a.slug, "--contact", "nobody", stdout=StringIO())
    with pytest.raises(CommandError, match="No company"):
        call_command("customer_erase", "--tenant", "no-such", "--address", "+44", stdout=StringIO())
    assert not ErasureRequest.objects.exists()
