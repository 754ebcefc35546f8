"""DemoAdapter: the BusinessAdapter over the demo telecom's tables, with the tools' outputs and errors."""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.telco.models import Account, Plan, PlanChange, Ticket
from apps.tools.adapters import BusinessAdapter
from apps.tools.demo_adapter import DemoAdapter
from apps.tools.errors import AdapterError
from apps.tools.schemas import (
    BillInfo,
    BillLine,
    OrderInfo,
    OrderItem,
    PlanChangeResult,
    PlanInfo,
    PlanOption,
    PlansComparison,
    TicketResult,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def adapter(seeded: uuid.UUID) -> BusinessAdapter:
    return DemoAdapter(seeded)


def _code(excinfo: pytest.ExceptionInfo[AdapterError]) -> tuple[str, bool]:
    return excinfo.value.code, excinfo.value.transient


def test_breaker_key_names_the_company(seeded: uuid.UUID) -> None:
    assert DemoAdapter(company=seeded).breaker_key == f"demo:{seeded}"


def test_order_lookup(adapter: BusinessAdapter) -> None:
    order = adapter.order_lookup(customer="cust-1001", order_number="NM-100198")

    assert order == OrderInfo(
        number="NM-100198",
        status="delivered",
        items=[OrderItem(description="Replacement SIM card", quantity=1)],
        placed_on=datetime.date(2026, 9, 10),
        carrier="PostNL",
        tracking_number="3SNMBS0198442",
        shipped_on=datetime.date(2026, 9, 10),
        estimated_delivery=datetime.date(2026, 9, 12),
        delivered_on=datetime.date(2026, 9, 12),
    )
    assert OrderInfo.model_validate(order.model_dump()) == order


@pytest.mark.parametrize(
    ("customer", "order_number"),
    [
        ("cust-1001", "NM-100251"),  # Tom Becker's order
        ("cust-1001", "NM-999999"),  # no such order
        ("cust-9999", "NM-100234"),  # no such customer
    ],
)
def test_order_lookup_not_found(adapter: BusinessAdapter, customer: str, order_number: str) -> None:
    with pytest.raises(AdapterError) as excinfo:
        adapter.order_lookup(customer=customer, order_number=order_number)

    assert _code(excinfo) == ("not_found", False)


def test_order_of_another_customer_reads_like_an_unknown_order(adapter: BusinessAdapter) -> None:
    with pytest.raises(AdapterError) as theirs:
        adapter.order_lookup(customer="cust-1001", order_number="NM-100251")
    with pytest.raises(AdapterError) as unknown:
        adapter.order_lookup(customer="cust-1001", order_number="NM-100252")

    assert theirs.value.message.replace("NM-100251", "#") == unknown.value.message.replace("NM-100252", "#")


def test_bill_latest(adapter: BusinessAdapter) -> None:
    assert adapter.bill_latest(customer="cust-1002") == BillInfo(
        number="NB-202610-1002",
        period_start=datetime.date(2026, 10, 1),
        period_end=datetime.date(2026, 10, 31),
        issued_on=datetime.date(2026, 11, 2),
        due_on=datetime.date(2026, 11, 16),
        currency="EUR",
        total=Decimal("38.24"),
        status="due",
        lines=[
            BillLine(description="Essential 5 GB, October 2026", kind="plan", amount=Decimal("12.00")),
            BillLine(
                description="Calls to international numbers, 23 minutes", kind="usage", amount=Decimal("4.60")
            ),
            BillLine(
                description="Device Payment Plan, Nimbus A5 128 GB, instalment 19 of 24",
                kind="device",
                amount=Decimal("15.00"),
            ),
            BillLine(description="VAT 21%", kind="tax", amount=Decimal("6.64")),
        ],
        previous_total=Decimal("32.67"),
    )


def test_bill_latest_not_found(adapter: BusinessAdapter) -> None:
    with pytest.raises(AdapterError) as excinfo:
        adapter.bill_latest(customer="cust-9999")

    assert _code(excinfo) == ("not_found", False)


def test_plans_compare(adapter: BusinessAdapter) -> None:
    comparison = adapter.plans_compare(customer="cust-1001")

    assert comparison == PlansComparison(
        current=PlanInfo(
            code="plus-20",
            name="Plus 20 GB",
            monthly_price=Decimal("20.00"),
            currency="EUR",
            data_gb=20,
            minutes=None,
            description="20 GB of data with rollover, unlimited minutes and texts. Video up to 1080p.",
        ),
        options=[
            PlanOption(
                code="essential-5",
                name="Essential 5 GB",
                monthly_price=Decimal("12.00"),
                currency="EUR",
                data_gb=5,
                minutes=300,
                description="5 GB of data, 300 minutes and unlimited texts. Video up to 480p.",
                monthly_difference=Decimal("-8.00"),
            ),
            PlanOption(
                code="unlimited-max",
                name="Unlimited Max",
                monthly_price=Decimal("35.00"),
                currency="EUR",
                data_gb=None,
                minutes=None,
                description=(
                    "Unlimited data, minutes and texts; 35 GB a month in Zone 1 roaming. Video up to 4K."
                ),
                monthly_difference=Decimal("15.00"),
            ),
        ],
    )


def test_plans_compare_from_a_withdrawn_plan_offers_every_plan_on_sale(
    seeded: uuid.UUID, adapter: BusinessAdapter
) -> None:
    Account.objects.for_company(seeded).filter(external_id="cust-1003").update(
        plan=Plan.objects.for_company(seeded).get(code="talk-only")
    )

    comparison = adapter.plans_compare(customer="cust-1003")

    assert comparison.current.code == "talk-only"
    assert [(o.code, o.monthly_difference) for o in comparison.options] == [
        ("essential-5", Decimal("4.00")),
        ("plus-20", Decimal("12.00")),
        ("unlimited-max", Decimal("27.00")),
    ]


def test_plans_compare_unknown_customer(adapter: BusinessAdapter) -> None:
    with pytest.raises(AdapterError) as excinfo:
        adapter.plans_compare(customer="cust-9999")

    assert _code(excinfo) == ("not_found", False)


def test_plan_change_once_per_key(seeded: uuid.UUID, adapter: BusinessAdapter) -> None:
    first = adapter.plan_change(customer="cust-1003", plan_code="plus-20", idempotency_key="run-1")
    again = adapter.plan_change(customer="cust-1003", plan_code="plus-20", idempotency_key="run-1")

    assert first == PlanChangeResult(
        reference=first.reference,
        from_plan="unlimited-max",
        to_plan="plus-20",
        effective_on=timezone.localdate(),
    )
    assert again == first
    assert PlanChange.objects.for_company(seeded).count() == 1


@pytest.mark.parametrize(
    ("customer", "plan_code", "code"),
    [
        ("cust-1003", "nope", "invalid_plan"),
        ("cust-1003", "talk-only", "invalid_plan"),
        ("cust-1003", "unlimited-max", "same_plan"),
        ("cust-9999", "plus-20", "not_found"),
    ],
)
def test_plan_change_errors_are_adapter_errors(
    seeded: uuid.UUID, adapter: BusinessAdapter, customer: str, plan_code: str, code: str
) -> None:
    with pytest.raises(AdapterError) as excinfo:
        adapter.plan_change(customer=customer, plan_code=plan_code, idempotency_key="run-1")

    assert _code(excinfo) == (code, False)
    assert Account.objects.for_company(seeded).get(external_id="cust-1003").plan.code == "unlimited-max"
    assert PlanChange.objects.count() == 0


def test_ticket_create(seeded: uuid.UUID, adapter: BusinessAdapter) -> None:
    first = adapter.ticket_create(
        customer="cust-1002",
        subject="Charger missing",
        description="The box had no charger.",
        idempotency_key="t1",
    )
    again = adapter.ticket_create(
        customer="cust-1002",
        subject="Charger missing",
        description="The box had no charger.",
        idempotency_key="t1",
    )

    assert first == TicketResult(number=first.number, status="open", subject="Charger missing")
    assert again == first
    assert Ticket.objects.for_company(seeded).count() == 1


def test_ticket_create_unknown_customer(adapter: BusinessAdapter) -> None:
    with pytest.raises(AdapterError) as excinfo:
        adapter.ticket_create(
            customer="cust-9999", subject="Hi there", description="Hi there", idempotency_key="t"
        )

    assert _code(excinfo) == ("not_found", False)
    assert Ticket.objects.count() == 0


def test_another_companys_adapter_sees_nothing(seeded: uuid.UUID) -> None:
    other = DemoAdapter(uuid.uuid4())

    for call in (
        lambda: other.order_lookup(customer="cust-1001", order_number="NM-100234"),
        lambda: other.bill_latest(customer="cust-1001"),
        lambda: other.plans_compare(customer="cust-1001"),
        lambda: other.plan_change(customer="cust-1001", plan_code="unlimited-max", idempotency_key="x"),
        lambda: other.ticket_create(
            customer="cust-1001", subject="Hello", description="Hello", idempotency_key="x"
        ),
    ):
        with pytest.raises(AdapterError) as excinfo:
            call()
        assert excinfo.value.code == "not_found"
    assert Account.objects.for_company(seeded).get(external_id="cust-1001").plan.code == "plus-20"
    assert PlanChange.objects.count() == 0
    assert Ticket.objects.count() == 0
