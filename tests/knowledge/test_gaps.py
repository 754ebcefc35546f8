"""Knowledge gaps: the questions the assistant abstained on, for editors to act on."""

from __future__ import annotations

import pytest
from django.utils.html import escape

from apps.guardrails.pii import pii_redact
from apps.knowledge.models import KnowledgeGap
from apps.knowledge.services import knowledge_gap_record

pytestmark = pytest.mark.django_db


def _gap(tenant, question="Can I pay with <EMAIL_ADDRESS>?"):
    return knowledge_gap_record(
        tenant=tenant,
        question=pii_redact(question),
        top_similarity=0.21,
        threshold=0.4,
        nearest=[{"title": "billing", "section": "Billing > Payment", "similarity": 0.21}],
    )


def test_editors_list_and_resolve_gaps_through_the_page(tenant_a, client_as):
    gap = _gap(tenant_a.tenant, "Do you take payment by Maria Lopez's cheque?")
    page = client_as(tenant_a.editor).get(f"/staff/{tenant_a.slug}/knowledge/gaps/")
    assert page.status_code == 200
    html = page.content.decode()
    assert escape(gap.question) in html  # "<PERSON>" is text, escaped
    assert "Maria" not in html  # stored redacted
    assert "0.21 of 0.40 needed" in html
    done = client_as(tenant_a.editor).post(
        f"/staff/{tenant_a.slug}/knowledge/gaps/", {"action": "resolve", "gap": str(gap.id)}
    )
    assert done.status_code == 302
    gap.refresh_from_db()
    assert gap.resolved_by == tenant_a.editor
    assert (
        "No open gaps"
        in client_as(tenant_a.editor).get(f"/staff/{tenant_a.slug}/knowledge/gaps/").content.decode()
    )


def test_the_gap_api_lists_open_gaps_and_resolves_them(tenant_a, api_client_as):
    gap = _gap(tenant_a.tenant)
    client = api_client_as(tenant_a.editor)
    rows = client.get(f"/api/v1/tenants/{tenant_a.slug}/kb/gaps/").json()
    assert [(r["id"], r["question"], r["threshold"]) for r in rows] == [
        (str(gap.id), "Can I pay with <EMAIL_ADDRESS>?", 0.4)
    ]
    resolved = client.post(f"/api/v1/tenants/{tenant_a.slug}/kb/gaps/{gap.id}/resolve/").json()
    assert resolved["resolved_by"] == tenant_a.editor.username
    assert client.get(f"/api/v1/tenants/{tenant_a.slug}/kb/gaps/").json() == []
    assert len(client.get(f"/api/v1/tenants/{tenant_a.slug}/kb/gaps/?resolved=1").json()) == 1


def test_agents_get_403_and_other_tenants_404_and_nothing_changes(
    tenant_a, tenant_b, api_client_as, client_as
):
    gap = _gap(tenant_a.tenant)
    assert api_client_as(tenant_a.agent).get(f"/api/v1/tenants/{tenant_a.slug}/kb/gaps/").status_code == 403
    assert api_client_as(tenant_b.editor).get(f"/api/v1/tenants/{tenant_a.slug}/kb/gaps/").status_code == 404
    cross = api_client_as(tenant_b.editor).post(f"/api/v1/tenants/{tenant_b.slug}/kb/gaps/{gap.id}/resolve/")
    assert cross.status_code == 404
    page = client_as(tenant_b.editor).post(
        f"/staff/{tenant_b.slug}/knowledge/gaps/", {"action": "resolve", "gap": str(gap.id)}
    )
    assert page.status_code == 302
    assert KnowledgeGap.objects.get(id=gap.id).resolved_at is None
