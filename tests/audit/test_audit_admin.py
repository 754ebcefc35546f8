"""The audit trail in the Django admin: operators can list, filter and open rows, never add, change or
delete one (a change would break the chain)."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.audit.trail import audit_record, chain_verify

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/audit/auditevent/"


@pytest.fixture
def operator() -> Client:
    client = Client()
    client.force_login(
        User.objects.create_superuser(username="root", email="root@ops.example", password=None)
    )
    return client


def test_rows_can_be_listed_filtered_and_opened_but_not_changed(tenant_a, operator):
    row = audit_record(tenant_id=tenant_a.tenant.pk, action="handoff.claim", target_id="conv-42")
    listing = operator.get(CHANGELIST, {"action": "handoff.claim", "q": "conv-42"})
    assert listing.status_code == 200
    assert listing.context["cl"].result_count == 1
    assert "Add audit event" not in listing.content.decode()

    detail = operator.get(f"{CHANGELIST}{row.pk}/change/")
    assert detail.status_code == 200
    assert not detail.context["has_change_permission"]
    assert not detail.context["has_delete_permission"]

    assert operator.get(f"{CHANGELIST}add/").status_code == 403
    assert operator.post(f"{CHANGELIST}{row.pk}/change/", {"action": "x.y"}).status_code == 403
    assert operator.post(f"{CHANGELIST}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.get(pk=row.pk).action == "handoff.claim"
    assert list(chain_verify(tenant_id=tenant_a.tenant.pk)) == []
