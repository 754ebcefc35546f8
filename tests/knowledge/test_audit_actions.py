"""Editors' writes on the knowledge base leave one audit row each (apps/knowledge/actions.py): who, on what,
in which company, with version numbers and ids but never the document's words; a refused write leaves none."""

from __future__ import annotations

import json

import pytest

from apps.audit.models import AuditEvent
from apps.audit.trail import chain_verify
from apps.core.errors import Conflict, Forbidden, NotFound
from apps.guardrails.pii import pii_redact
from apps.knowledge import ingestion, services
from apps.knowledge.models import Document, DocumentVersion
from tests.conftest import TenantStaff

pytestmark = pytest.mark.django_db

POLICY = b"""# Refund policy

## Device returns

You can return a phone within 30 days of delivery for a full refund, if it is undamaged and in its box.
Write to Maria Lopez at maria.lopez@example.com for a return label.
"""
POLICY_V2 = POLICY.replace(b"within 30 days", b"within 45 days")


def _upload(tenant, actor, data: bytes = POLICY, document: Document | None = None) -> DocumentVersion:
    return services.document_upload(
        tenant=tenant,
        actor=actor,
        upload=services.Upload(filename="refunds.md", data=data),
        document=document,
        title="Refunds for Maria Lopez",
    )


def _ready(tenant, actor, data: bytes = POLICY, document: Document | None = None) -> DocumentVersion:
    version = ingestion.version_ingest(version_id=str(_upload(tenant, actor, data, document).id))
    assert version is not None
    assert version.status == "ready"
    return version


def _rows(tenant, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(tenant_id=tenant.id, action=action).order_by("seq"))


def _one(tenant, action: str, actor, target) -> AuditEvent:
    """The single row of `action`, by `actor`, on `target`; the company's chain still verifies."""
    rows = _rows(tenant, action)
    assert len(rows) == 1, [r.action for r in rows]
    row = rows[0]
    assert (row.tenant_id, row.actor_id, row.actor_kind) == (tenant.id, actor.id, "staff")
    assert row.actor_label == actor.username
    assert (row.target_type, row.target_id) == (type(target).__name__, str(target.pk))
    text = json.dumps(row.data)
    assert "refund" not in text.lower()
    assert "Maria" not in text
    assert "@" not in text
    assert list(chain_verify(tenant_id=tenant.id)) == []
    return row


def test_every_editor_write_leaves_one_audit_row(tenant_a: TenantStaff) -> None:
    tenant, editor = tenant_a.tenant, tenant_a.editor
    v1 = _ready(tenant, editor)
    document = v1.document
    upload = _one(tenant, "knowledge.upload", editor, v1)
    assert upload.data == {
        "document_id": str(document.id),
        "version": 1,
        "kind": "markdown",
        "size_bytes": len(POLICY),
    }

    services.version_redact(version=v1, actor=editor)
    assert _one(tenant, "knowledge.redact", editor, v1).data["version"] == 1

    services.version_publish(version=v1, actor=editor)
    published = _one(tenant, "knowledge.publish", editor, v1)
    assert published.data == {
        "document_id": str(document.id),
        "version": 1,
        "from_version": None,
        "to_version": 1,
    }

    queued = _upload(tenant, editor, POLICY_V2, document)  # still queued: no worker ran it
    services.version_retry(version=queued, actor=editor)
    assert _one(tenant, "knowledge.retry", editor, queued).data == {
        "document_id": str(document.id),
        "version": 2,
    }
    v2 = ingestion.version_ingest(version_id=str(queued.id))
    assert v2 is not None

    with pytest.raises(Conflict):  # v1 is live: a failed write leaves no row either
        services.version_rollback(document=document, number=1, actor=editor)
    assert _rows(tenant, "knowledge.rollback") == []


def test_rollback_unpublish_delete_and_gap_resolve_are_audited(tenant_a: TenantStaff) -> None:
    tenant, editor = tenant_a.tenant, tenant_a.editor
    v1 = _ready(tenant, None)
    document = v1.document
    v2 = _ready(tenant, None, POLICY_V2, document)
    services.version_publish(version=v2, actor=None)
    system = _rows(tenant, "knowledge.publish")
    assert [(r.actor_kind, r.actor_id) for r in system] == [("system", None)]

    rolled = services.version_rollback(document=document, number=1, actor=editor)
    row = _one(tenant, "knowledge.rollback", editor, rolled)
    assert (row.data["from_version"], row.data["to_version"]) == (2, 1)

    services.document_unpublish(document=document, actor=editor)
    assert _one(tenant, "knowledge.unpublish", editor, document).data == {
        "document_id": str(document.id),
        "from_version": 1,
    }

    document_id = document.id
    services.document_delete(document=document, actor=editor)
    deleted = _rows(tenant, "knowledge.delete")
    assert len(deleted) == 1
    assert (deleted[0].target_type, deleted[0].target_id, deleted[0].actor_id) == (
        "Document",
        str(document_id),
        editor.id,
    )
    assert deleted[0].data == {"document_id": str(document_id), "versions": 2, "published_version": None}

    gap = services.knowledge_gap_record(
        tenant=tenant,
        question=pii_redact("Can Maria Lopez pay by cheque?"),
        top_similarity=0.2,
        threshold=0.4,
        nearest=[],
    )
    services.knowledge_gap_resolve(tenant=tenant, gap=gap, actor=tenant_a.admin)  # admins hold every role
    assert _one(tenant, "knowledge.gap_resolve", tenant_a.admin, gap).data == {
        "gap_id": str(gap.id),
        "already_resolved": False,
    }
    assert list(chain_verify(tenant_id=tenant.id)) == []


def test_a_refused_write_changes_nothing_and_writes_no_row(
    tenant_a: TenantStaff, tenant_b: TenantStaff
) -> None:
    tenant = tenant_a.tenant
    version = _ready(tenant, None)
    before = AuditEvent.objects.filter(tenant_id=tenant.id).count()
    before_b = AuditEvent.objects.filter(tenant_id=tenant_b.tenant.id).count()

    with pytest.raises(Forbidden):  # an agent of the company is not an editor
        services.version_publish(version=version, actor=tenant_a.agent)
    with pytest.raises(NotFound):  # an editor of another company does not learn the document exists
        services.version_publish(version=version, actor=tenant_b.editor)
    with pytest.raises(NotFound):
        services.document_delete(document=version.document, actor=tenant_b.editor)
    with pytest.raises(Forbidden):
        _upload(tenant, tenant_a.agent)

    version.document.refresh_from_db()
    assert version.document.published_version_id is None
    assert DocumentVersion.objects.filter(document=version.document).count() == 1
    assert AuditEvent.objects.filter(tenant_id=tenant.id).count() == before
    assert AuditEvent.objects.filter(tenant_id=tenant_b.tenant.id).count() == before_b


def test_the_editor_pages_record_the_signed_in_editor(tenant_a: TenantStaff, client_as) -> None:
    version = _ready(tenant_a.tenant, None)
    page = client_as(tenant_a.editor).post(
        f"/staff/{tenant_a.slug}/knowledge/versions/{version.id}/", {"action": "publish"}
    )
    assert page.status_code == 302
    _one(tenant_a.tenant, "knowledge.publish", tenant_a.editor, version)
