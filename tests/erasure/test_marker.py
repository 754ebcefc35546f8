"""THE marker test (issue 16, "Erasure"): a customer planted in every place, erased, then every column of
every model and every Redis key searched for their marker. Another customer of the same company keeps
everything."""

from __future__ import annotations

import uuid

import pytest

from apps.audit.models import AuditEvent
from apps.audit.trail import chain_verify
from apps.core import erasure_registry
from apps.erasure import services
from apps.erasure.models import ErasureRequest, SubjectKind
from apps.erasure.steps import STEP_NAMES
from apps.erasure.subjects import Subject
from tests.conftest import TenantStaff
from tests.erasure.planting import database_hits, plant_customer, redis_hits

pytestmark = pytest.mark.django_db

# What planting one customer puts in each place (two conversations: the widget and a text-message one).
EXPECTED_COUNTS = {
    "cache_keys": 7,  # per conversation: streaming pointer, partial text, turn; and the demo phone's list
    "cached_answers": 2,  # the same question, cached in both answer styles
    "knowledge_gaps": 2,
    "tool_runs": 2,
    "voice_clips": 1,
    "notes": 2,
    "tickets": 1,
    "email_threads": 1,
    "emails": 2,
    "handoffs": 2,
    "case_files": 2,
    "messages": 4,
    "assistant_traces": 2,
    "deliveries": 1,
    "conversations": 2,
    "events": 2,
    "ratings": 2,
    "contacts": 1,
}


def test_no_marker_is_left_anywhere_and_the_neighbour_keeps_everything(tenant_a: TenantStaff) -> None:
    tenant = tenant_a.tenant
    erased = plant_customer(tenant, tenant_a.agent)
    kept = plant_customer(tenant, tenant_a.agent)
    assert database_hits(erased.marker), "the planting put the marker nowhere"
    assert redis_hits(erased.marker)
    kept_rows, kept_keys = database_hits(kept.marker), redis_hits(kept.marker)
    kept_visitor = database_hits(str(kept.visitor_id))

    request = services.customer_erase_request(
        tenant=tenant,
        subject=Subject(kind=SubjectKind.CONTACT, value=erased.contact.external_id),
        actor=tenant_a.admin,
        run_now=True,
    )

    assert request.state == ErasureRequest.State.DONE
    assert request.error == ""
    assert request.steps == list(STEP_NAMES)
    assert {k: request.counts[k] for k in EXPECTED_COUNTS} == EXPECTED_COUNTS
    # The rest come from registered erasers: the memory app's two facts and two consents.
    assert sum(v for k, v in request.counts.items() if k not in EXPECTED_COUNTS) == 4
    assert database_hits(erased.marker) == {}
    assert redis_hits(erased.marker) == []
    assert database_hits(str(erased.visitor_id)) == {}
    # The neighbour: every row and key with their marker is still there.
    assert database_hits(kept.marker) == kept_rows
    assert sorted(redis_hits(kept.marker)) == sorted(kept_keys)
    assert database_hits(str(kept.visitor_id)) == kept_visitor
    # The request forgot who it was about; the audit trail has a tombstone with counts only.
    request.refresh_from_db()
    assert (request.subject_value, request.scope) == ("", {})
    tombstone = AuditEvent.objects.get(tenant=tenant, action="customer.erase")
    assert tombstone.actor == tenant_a.admin
    assert tombstone.target_id == str(request.id)
    assert tombstone.data["counts"] == request.counts
    assert tombstone.data["state"] == "done"
    assert list(chain_verify(tenant_id=tenant.id)) == []


def test_registered_erasers_run_with_the_customers_ids_and_verify_calls_them_again(
    tenant_a: TenantStaff, monkeypatch: pytest.MonkeyPatch
) -> None:
    planted = plant_customer(tenant_a.tenant, tenant_a.agent)
    calls: list[tuple[uuid.UUID, list[str], uuid.UUID | None]] = []
    remembered = {"rows": 3}

    def forget(tenant_id: uuid.UUID, conversation_ids: list[uuid.UUID], contact_id: uuid.UUID | None) -> int:
        calls.append((tenant_id, sorted(map(str, conversation_ids)), contact_id))
        removed, remembered["rows"] = remembered["rows"], 0
        return removed

    monkeypatch.setattr(erasure_registry, "_erasers", {})
    erasure_registry.erasure_register("memories", forget)
    request = services.customer_erase_request(
        tenant=tenant_a.tenant,
        subject=Subject(kind=SubjectKind.CONTACT, value=planted.contact.external_id),
        actor=None,
        run_now=True,
    )

    assert request.state == ErasureRequest.State.DONE
    assert request.counts["memories"] == 3
    expected = (tenant_a.tenant.id, sorted(str(c.id) for c in planted.conversations), planted.contact.id)
    assert calls == [expected, expected]  # the step, then the verification (which found nothing)


def test_eraser_names_are_short_words() -> None:
    with pytest.raises(ValueError, match="short word"):
        erasure_registry.erasure_register("two words", lambda *_: 0)
