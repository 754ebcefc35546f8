"""Writes: plan changes and tickets apply once per idempotency key; a refusal changes nothing."""

from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from apps.telco import services
from apps.telco.errors import TelcoError
from apps.telco.models import Account, Plan, PlanChange, Ticket
from apps.telco.records import PlanChangeRecord, TicketRecord

pytestmark = pytest.mark.django_db


def _plan_of(company: uuid.UUID, external_id: str) -> str:
    return Account.objects.for_company(company).get(external_id=external_id).plan.code


def test_plan_change_applies_once_per_key(seeded: uuid.UUID) -> None:
    first = services.plan_change(
        company=seeded, external_id="cust-1002", plan_code="plus-20", idempotency_key="run-1"
    )
    updated_at = Account.objects.for_company(seeded).get(external_id="cust-1002").updated_at

    again = services.plan_change(
        company=seeded, external_id="cust-1002", plan_code="plus-20", idempotency_key="run-1"
    )

    assert first == PlanChangeRecord(
        reference=first.reference,
        from_plan="essential-5",
        to_plan="plus-20",
        effective_on=timezone.localdate(),
        replayed=False,
    )
    assert first.reference.startswith("PC-")
    assert len(first.reference) == 11
    assert again == PlanChangeRecord(
        reference=first.reference,
        from_plan="essential-5",
        to_plan="plus-20",
        effective_on=first.effective_on,
        replayed=True,
    )
    assert _plan_of(seeded, "cust-1002") == "plus-20"
    assert Account.objects.for_company(seeded).get(external_id="cust-1002").updated_at == updated_at
    assert PlanChange.objects.for_company(seeded).count() == 1


def test_a_repeated_key_returns_the_first_change_even_with_other_arguments(seeded: uuid.UUID) -> None:
    first = services.plan_change(
        company=seeded, external_id="cust-1002", plan_code="plus-20", idempotency_key="run-1"
    )

    again = services.plan_change(
        company=seeded, external_id="cust-1002", plan_code="unlimited-max", idempotency_key="run-1"
    )

    assert (again.reference, again.to_plan, again.replayed) == (first.reference, "plus-20", True)
    assert _plan_of(seeded, "cust-1002") == "plus-20"
    assert PlanChange.objects.count() == 1


def test_a_new_key_makes_a_new_change(seeded: uuid.UUID) -> None:
    services.plan_change(
        company=seeded, external_id="cust-1002", plan_code="plus-20", idempotency_key="run-1"
    )

    second = services.plan_change(
        company=seeded, external_id="cust-1002", plan_code="unlimited-max", idempotency_key="run-2"
    )

    assert (second.from_plan, second.to_plan, second.replayed) == ("plus-20", "unlimited-max", False)
    assert _plan_of(seeded, "cust-1002") == "unlimited-max"
    assert list(
        PlanChange.objects.for_company(seeded)
        .order_by("created_at")
        .values_list("from_plan__code", "to_plan__code")
    ) == [("essential-5", "plus-20"), ("plus-20", "unlimited-max")]


@pytest.mark.parametrize(
    ("external_id", "plan_code", "code"),
    [
        ("cust-1002", "gold-999", "invalid_plan"),
        ("cust-1002", "talk-only", "invalid_plan"),  # withdrawn
        ("cust-1002", "essential-5", "same_plan"),
        ("cust-9999", "plus-20", "not_found"),
    ],
)
def test_refused_plan_changes_change_nothing(
    seeded: uuid.UUID, external_id: str, plan_code: str, code: str
) -> None:
    before = list(Account.objects.order_by("id").values_list("id", "plan_id", "updated_at"))

    with pytest.raises(TelcoError) as excinfo:
        services.plan_change(
            company=seeded, external_id=external_id, plan_code=plan_code, idempotency_key="run-1"
        )

    assert excinfo.value.code == code
    assert list(Account.objects.order_by("id").values_list("id", "plan_id", "updated_at")) == before
    assert PlanChange.objects.count() == 0


def test_a_plan_of_another_company_is_invalid(seeded: uuid.UUID) -> None:
    Plan.objects.create(company=uuid.uuid4(), code="gold-50", name="Gold 50 GB", monthly_price="25.00")

    with pytest.raises(TelcoError) as excinfo:
        services.plan_change(
            company=seeded, external_id="cust-1002", plan_code="gold-50", idempotency_key="k1"
        )

    assert excinfo.value.code == "invalid_plan"
    assert _plan_of(seeded, "cust-1002") == "essential-5"
    assert PlanChange.objects.count() == 0


def test_a_key_used_by_another_customer_is_a_conflict(seeded: uuid.UUID) -> None:
    services.plan_change(
        company=seeded, external_id="cust-1002", plan_code="plus-20", idempotency_key="run-1"
    )

    with pytest.raises(TelcoError) as excinfo:
        services.plan_change(
            company=seeded, external_id="cust-1001", plan_code="unlimited-max", idempotency_key="run-1"
        )

    assert excinfo.value.code == "idempotency_conflict"
    assert _plan_of(seeded, "cust-1001") == "plus-20"
    assert PlanChange.objects.count() == 1


def test_the_same_key_in_two_companies_is_two_changes(seeded: uuid.UUID) -> None:
    other = uuid.uuid4()
    services.demo_telco_load(company=other)

    a = services.plan_change(
        company=seeded, external_id="cust-1002", plan_code="plus-20", idempotency_key="k"
    )
    b = services.plan_change(
        company=other, external_id="cust-1002", plan_code="unlimited-max", idempotency_key="k"
    )

    assert (a.replayed, b.replayed) == (False, False)
    assert (_plan_of(seeded, "cust-1002"), _plan_of(other, "cust-1002")) == ("plus-20", "unlimited-max")
    assert PlanChange.objects.count() == 2


def test_ticket_create_is_idempotent(seeded: uuid.UUID) -> None:
    first = services.ticket_create(
        company=seeded,
        external_id="cust-1001",
        subject=" No signal at home ",
        description="Since Monday I have no signal in my flat.",
        idempotency_key="run-7",
    )
    again = services.ticket_create(
        company=seeded,
        external_id="cust-1001",
        subject="No signal at home",
        description="Since Monday I have no signal in my flat.",
        idempotency_key="run-7",
    )

    assert first == TicketRecord(
        number=first.number, status="open", subject="No signal at home", replayed=False
    )
    assert again == TicketRecord(
        number=first.number, status="open", subject="No signal at home", replayed=True
    )
    assert first.number.startswith("TK-")
    assert first.number[3:].isdigit()
    assert len(first.number) == 9
    ticket = Ticket.objects.for_company(seeded).get()
    assert (ticket.account.external_id, ticket.description, ticket.idempotency_key) == (
        "cust-1001",
        "Since Monday I have no signal in my flat.",
        "run-7",
    )


def test_ticket_for_unknown_customer_is_not_found(seeded: uuid.UUID) -> None:
    with pytest.raises(TelcoError) as excinfo:
        services.ticket_create(
            company=seeded, external_id="cust-9999", subject="Hello", description="Hello", idempotency_key="k"
        )

    assert excinfo.value.code == "not_found"
    assert Ticket.objects.count() == 0


def test_ticket_key_used_by_another_customer_is_a_conflict(seeded: uuid.UUID) -> None:
    services.ticket_create(
        company=seeded, external_id="cust-1001", subject="Hello", description="Hello", idempotency_key="k"
    )

    with pytest.raises(TelcoError) as excinfo:
        services.ticket_create(
            company=seeded, external_id="cust-1002", subject="Other", description="Other", idempotency_key="k"
        )

    assert excinfo.value.code == "idempotency_conflict"
    assert list(Ticket.objects.values_list("account__external_id", "subject")) == [("cust-1001", "Hello")]


def test_a_key_stored_between_check_and_insert_returns_the_stored_change(
    seeded: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race the account lock normally prevents: another run stores the key after this one looked for it.
    # The unique constraint still refuses a second change, and the stored one is returned.
    account = Account.objects.for_company(seeded).get(external_id="cust-1002")
    plans = {p.code: p for p in Plan.objects.for_company(seeded)}
    stored = PlanChange.objects.create(
        company=seeded,
        account=account,
        from_plan=plans["essential-5"],
        to_plan=plans["plus-20"],
        effective_on=timezone.localdate(),
        reference="PC-0000CAFE",
        idempotency_key="run-1",
    )
    lookup = services._plan_change_stored
    calls: list[str] = []

    def late_lookup(**kwargs):
        calls.append(kwargs["idempotency_key"])
        return None if len(calls) == 1 else lookup(**kwargs)

    monkeypatch.setattr(services, "_plan_change_stored", late_lookup)

    result = services.plan_change(
        company=seeded, external_id="cust-1002", plan_code="unlimited-max", idempotency_key="run-1"
    )

    assert result == PlanChangeRecord(
        reference="PC-0000CAFE",
        from_plan="essential-5",
        to_plan="plus-20",
        effective_on=stored.effective_on,
        replayed=True,
    )
    assert calls == ["run-1", "run-1"]
    assert _plan_of(seeded, "cust-1002") == "essential-5"
    assert list(PlanChange.objects.values_list("reference", flat=True)) == ["PC-0000CAFE"]
