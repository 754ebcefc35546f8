"""Reads: a customer sees their own orders and bills, never another customer's or another company's."""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal

import pytest

from apps.telco import selectors
from apps.telco.models import Bill
from apps.telco.records import (
    AccountRecord,
    BillLineRecord,
    BillRecord,
    OrderItemRecord,
    OrderRecord,
    PlanRecord,
)

pytestmark = pytest.mark.django_db

SMART_20 = PlanRecord(
    code="plus-20",
    name="Plus 20 GB",
    monthly_price=Decimal("20.00"),
    currency="EUR",
    data_gb=20,
    minutes=None,
    description="20 GB of data with rollover, unlimited minutes and texts. Video up to 1080p.",
    is_active=True,
)


def test_account_find(seeded: uuid.UUID) -> None:
    assert selectors.account_find(company=seeded, external_id="cust-1001") == AccountRecord(
        external_id="cust-1001",
        name="Maria Lopez",
        email="maria.lopez@example.com",
        phone="+31 6 5550 1001",
        customer_since=datetime.date(2021, 3, 14),
        plan=SMART_20,
    )
    assert selectors.account_find(company=seeded, external_id="cust-9999") is None


def test_own_order(seeded: uuid.UUID) -> None:
    assert selectors.order_for_account(
        company=seeded, external_id="cust-1001", order_number="NM-100234"
    ) == OrderRecord(
        number="NM-100234",
        status="shipped",
        items=(
            OrderItemRecord(description="Nimbus Phone X2 128 GB, midnight blue", quantity=1),
            OrderItemRecord(description="Clear case for Nimbus Phone X2", quantity=1),
        ),
        carrier="DHL",
        tracking_number="JD0146000038285612",
        placed_on=datetime.date(2026, 11, 3),
        shipped_on=datetime.date(2026, 11, 4),
        estimated_delivery=datetime.date(2026, 11, 7),
        delivered_on=None,
    )


def test_order_number_is_matched_whatever_the_case(seeded: uuid.UUID) -> None:
    order = selectors.order_for_account(company=seeded, external_id="cust-1002", order_number=" nm-100251 ")
    assert order is not None
    assert (order.number, order.status, order.carrier) == ("NM-100251", "processing", "")


def test_another_customers_order_is_none(seeded: uuid.UUID) -> None:
    # NM-100251 exists, but on Tom Becker's account.
    assert (
        selectors.order_for_account(company=seeded, external_id="cust-1001", order_number="NM-100251") is None
    )


def test_unknown_order_and_unknown_customer_are_none(seeded: uuid.UUID) -> None:
    assert (
        selectors.order_for_account(company=seeded, external_id="cust-1001", order_number="NM-999999") is None
    )
    assert (
        selectors.order_for_account(company=seeded, external_id="cust-9999", order_number="NM-100234") is None
    )


def test_latest_bill_with_lines_and_previous_total(seeded: uuid.UUID) -> None:
    assert selectors.bill_latest(company=seeded, external_id="cust-1001") == BillRecord(
        number="NB-202610-1001",
        period_start=datetime.date(2026, 10, 1),
        period_end=datetime.date(2026, 10, 31),
        issued_on=datetime.date(2026, 11, 2),
        due_on=datetime.date(2026, 11, 16),
        currency="EUR",
        total=Decimal("44.77"),
        status="due",
        lines=(
            BillLineRecord(description="Plus 20 GB, October 2026", kind="plan", amount=Decimal("20.00")),
            BillLineRecord(
                description="Travel Pass Zone 2, United States, 3 days at 6.00",
                kind="roaming",
                amount=Decimal("18.00"),
            ),
            BillLineRecord(description="Direct debit discount", kind="discount", amount=Decimal("-1.00")),
            BillLineRecord(description="VAT 21%", kind="tax", amount=Decimal("7.77")),
        ),
        previous_total=Decimal("29.04"),
    )


def test_latest_bill_of_a_customer_without_bills(seeded: uuid.UUID) -> None:
    assert selectors.bill_latest(company=seeded, external_id="cust-9999") is None


def test_first_bill_has_no_previous_total(seeded: uuid.UUID) -> None:
    Bill.objects.filter(account__company=seeded, number="NB-202609-1003").delete()

    bill = selectors.bill_latest(company=seeded, external_id="cust-1003")

    assert bill is not None
    assert (bill.number, bill.total, bill.previous_total) == ("NB-202610-1003", Decimal("45.98"), None)


def test_plans_on_sale_are_the_active_ones_cheapest_first(seeded: uuid.UUID) -> None:
    plans = selectors.plans_on_sale(company=seeded)

    assert [(p.code, p.monthly_price) for p in plans] == [
        ("essential-5", Decimal("12.00")),
        ("plus-20", Decimal("20.00")),
        ("unlimited-max", Decimal("35.00")),
    ]
    assert plans[1] == SMART_20


def test_another_companys_data_is_invisible(seeded: uuid.UUID) -> None:
    other = uuid.uuid4()

    assert selectors.account_find(company=other, external_id="cust-1001") is None
    assert (
        selectors.order_for_account(company=other, external_id="cust-1001", order_number="NM-100234") is None
    )
    assert selectors.bill_latest(company=other, external_id="cust-1001") is None
    assert selectors.plans_on_sale(company=other) == []
