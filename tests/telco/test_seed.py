"""The demo telecom's seed: what it creates, and that loading it again changes nothing."""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal

import pytest

from apps.telco.demo_data import DEMO_ACCOUNTS, DEMO_BILLS, DEMO_ORDERS
from apps.telco.models import Account, Bill, BillLine, Order, Plan, PlanChange, Ticket
from apps.telco.services import DemoTelcoResult, demo_telco_load

pytestmark = pytest.mark.django_db

MODELS = (Plan, Account, Bill, BillLine, Order, PlanChange, Ticket)


def _counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


def _snapshot() -> list[tuple[object, ...]]:
    return [tuple(row) for model in MODELS for row in model.objects.order_by("id").values_list()]


def test_seed_creates_the_demo_telecom(company: uuid.UUID) -> None:
    result = demo_telco_load(company=company)

    assert result == DemoTelcoResult(plans_created=4, accounts_created=3, bills_created=7, orders_created=5)
    assert _counts() == {
        "Plan": 4,
        "Account": 3,
        "Bill": 7,
        "BillLine": 24,
        "Order": 5,
        "PlanChange": 0,
        "Ticket": 0,
    }
    assert list(
        Plan.objects.for_company(company).values_list("code", "monthly_price", "data_gb", "is_active")
    ) == [
        ("talk-only", Decimal("8.00"), 0, False),
        ("essential-5", Decimal("12.00"), 5, True),
        ("plus-20", Decimal("20.00"), 20, True),
        ("unlimited-max", Decimal("35.00"), None, True),
    ]
    assert list(
        Account.objects.for_company(company).values_list("external_id", "name", "email", "plan__code")
    ) == [
        ("cust-1001", "Maria Lopez", "maria.lopez@example.com", "plus-20"),
        ("cust-1002", "Tom Becker", "tom.becker@example.com", "essential-5"),
        ("cust-1003", "Aiko Tanaka", "aiko.tanaka@example.com", "unlimited-max"),
    ]
    assert dict(Bill.objects.filter(account__company=company).values_list("number", "total")) == {
        "NB-202608-1001": Decimal("22.99"),
        "NB-202609-1001": Decimal("29.04"),
        "NB-202610-1001": Decimal("44.77"),
        "NB-202609-1002": Decimal("32.67"),
        "NB-202610-1002": Decimal("38.24"),
        "NB-202609-1003": Decimal("42.35"),
        "NB-202610-1003": Decimal("45.98"),
    }
    assert list(
        Order.objects.for_company(company)
        .order_by("number")
        .values_list("number", "account__external_id", "status")
    ) == [
        ("NM-100112", "cust-1002", "delivered"),
        ("NM-100198", "cust-1001", "delivered"),
        ("NM-100234", "cust-1001", "shipped"),
        ("NM-100245", "cust-1003", "delivered"),
        ("NM-100251", "cust-1002", "processing"),
    ]


def test_every_bill_total_is_the_sum_of_its_lines_and_ends_with_vat(seeded: uuid.UUID) -> None:
    for bill in Bill.objects.filter(account__company=seeded):
        lines = list(bill.lines.order_by("position"))
        assert sum(line.amount for line in lines) == bill.total, bill.number
        assert [line.position for line in lines] == list(range(1, len(lines) + 1)), bill.number
        assert (lines[-1].kind, lines[-1].description) == ("tax", "VAT 21%"), bill.number
    kinds = set(BillLine.objects.filter(bill__account__company=seeded).values_list("kind", flat=True))
    assert kinds == {"plan", "usage", "roaming", "device", "one_off", "discount", "tax"}


def test_demo_constants_match_what_is_loaded(seeded: uuid.UUID) -> None:
    for demo in DEMO_ACCOUNTS:
        account = Account.objects.for_company(seeded).get(external_id=demo.external_id)
        assert account.plan.code == demo.plan_code
        assert sorted(account.orders.values_list("number", flat=True)) == sorted(demo.order_numbers)
        assert list(account.bills.order_by("issued_on").values_list("number", flat=True)) == list(
            demo.bill_numbers
        )
    assert len(DEMO_BILLS) == 7
    assert len(DEMO_ORDERS) == 5
    shipped = Order.objects.for_company(seeded).get(number="NM-100234")
    assert (shipped.carrier, shipped.tracking_number, shipped.estimated_delivery) == (
        "DHL",
        "JD0146000038285612",
        datetime.date(2026, 11, 7),
    )


def test_loading_twice_changes_nothing(company: uuid.UUID) -> None:
    demo_telco_load(company=company)
    counts, snapshot = _counts(), _snapshot()

    again = demo_telco_load(company=company)

    assert again == DemoTelcoResult(plans_created=0, accounts_created=0, bills_created=0, orders_created=0)
    assert _counts() == counts
    assert _snapshot() == snapshot


def test_reloading_keeps_a_plan_the_customer_changed(seeded: uuid.UUID) -> None:
    Account.objects.for_company(seeded).filter(external_id="cust-1001").update(
        plan=Plan.objects.for_company(seeded).get(code="unlimited-max")
    )

    demo_telco_load(company=seeded)

    assert Account.objects.for_company(seeded).get(external_id="cust-1001").plan.code == "unlimited-max"


def test_two_companies_get_separate_copies(seeded: uuid.UUID) -> None:
    other = uuid.uuid4()

    result = demo_telco_load(company=other)

    assert result == DemoTelcoResult(plans_created=4, accounts_created=3, bills_created=7, orders_created=5)
    assert Account.objects.for_company(seeded).count() == 3
    assert Account.objects.for_company(other).count() == 3
    assert Order.objects.count() == 10
