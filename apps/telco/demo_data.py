"""The demo telecom's business data, on fixed dates so the README and the tests can quote it.

The demo's "now" is early November 2026: the October bills are issued and due, one order is on its way and
one is being prepared. Prices exclude VAT, which the loader adds at 21% as the last line of every bill
(Billing and Payments policy); amounts follow the demo policies (Data Boost 5 GB for EUR 5, Travel Pass
Zone 2 EUR 6 a day, EUR 1 direct debit discount, eSIM transfer EUR 5).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal

VAT_RATE = Decimal("0.21")


@dataclass(frozen=True)
class DemoPlan:
    code: str
    name: str
    monthly_price: Decimal
    data_gb: int | None
    minutes: int | None
    description: str
    is_active: bool = True


@dataclass(frozen=True)
class DemoAccount:
    external_id: str
    name: str
    email: str
    phone: str
    plan_code: str
    customer_since: datetime.date
    order_numbers: tuple[str, ...]
    bill_numbers: tuple[str, ...]  # oldest first; the last one is the latest bill


@dataclass(frozen=True)
class DemoBill:
    external_id: str
    number: str
    period_start: datetime.date
    period_end: datetime.date
    issued_on: datetime.date
    due_on: datetime.date
    status: str
    # (kind, description, amount) before VAT; the loader appends the VAT line and computes the total.
    lines: tuple[tuple[str, str, Decimal], ...]


@dataclass(frozen=True)
class DemoOrder:
    external_id: str
    number: str
    status: str
    items: tuple[tuple[str, int], ...]
    placed_on: datetime.date
    carrier: str = ""
    tracking_number: str = ""
    shipped_on: datetime.date | None = None
    estimated_delivery: datetime.date | None = None
    delivered_on: datetime.date | None = None


D = datetime.date
M = Decimal

DEMO_PLANS: tuple[DemoPlan, ...] = (
    DemoPlan(
        code="essential-5",
        name="Essential 5 GB",
        monthly_price=M("12.00"),
        data_gb=5,
        minutes=300,
        description="5 GB of data, 300 minutes and unlimited texts. Video up to 480p.",
    ),
    DemoPlan(
        code="plus-20",
        name="Plus 20 GB",
        monthly_price=M("20.00"),
        data_gb=20,
        minutes=None,
        description="20 GB of data with rollover, unlimited minutes and texts. Video up to 1080p.",
    ),
    DemoPlan(
        code="unlimited-max",
        name="Unlimited Max",
        monthly_price=M("35.00"),
        data_gb=None,
        minutes=None,
        description="Unlimited data, minutes and texts; 35 GB a month in Zone 1 roaming. Video up to 4K.",
    ),
    DemoPlan(
        code="talk-only",
        name="Talk Only",
        monthly_price=M("8.00"),
        data_gb=0,
        minutes=None,
        description="Unlimited minutes and texts, no data. Withdrawn: no longer sold.",
        is_active=False,
    ),
)

DEMO_ACCOUNTS: tuple[DemoAccount, ...] = (
    DemoAccount(
        external_id="cust-1001",
        name="Maria Lopez",
        email="maria.lopez@example.com",
        phone="+31 6 5550 1001",
        plan_code="plus-20",
        customer_since=D(2021, 3, 14),
        order_numbers=("NM-100234", "NM-100198"),
        bill_numbers=("NB-202608-1001", "NB-202609-1001", "NB-202610-1001"),
    ),
    DemoAccount(
        external_id="cust-1002",
        name="Tom Becker",
        email="tom.becker@example.com",
        phone="+31 6 5550 1002",
        plan_code="essential-5",
        customer_since=D(2025, 4, 2),
        order_numbers=("NM-100251", "NM-100112"),
        bill_numbers=("NB-202609-1002", "NB-202610-1002"),
    ),
    DemoAccount(
        external_id="cust-1003",
        name="Aiko Tanaka",
        email="aiko.tanaka@example.com",
        phone="+31 6 5550 1003",
        plan_code="unlimited-max",
        customer_since=D(2019, 11, 20),
        order_numbers=("NM-100245",),
        bill_numbers=("NB-202609-1003", "NB-202610-1003"),
    ),
)


def _monthly_bill(
    external_id: str, year: int, month: int, status: str, lines: tuple[tuple[str, str, Decimal], ...]
) -> DemoBill:
    # Calendar-month cycles; issued two days after the cycle closes, due 14 days after that.
    start = D(year, month, 1)
    next_start = D(year + month // 12, month % 12 + 1, 1)
    issued = next_start + datetime.timedelta(days=1)
    return DemoBill(
        external_id=external_id,
        number=f"NB-{year}{month:02d}-{external_id.removeprefix('cust-')}",
        period_start=start,
        period_end=next_start - datetime.timedelta(days=1),
        issued_on=issued,
        due_on=issued + datetime.timedelta(days=14),
        status=status,
        lines=lines,
    )


_DIRECT_DEBIT = ("discount", "Direct debit discount", M("-1.00"))

DEMO_BILLS: tuple[DemoBill, ...] = (
    # Maria Lopez, Plus 20 GB.
    _monthly_bill(
        "cust-1001", 2026, 8, "paid", (("plan", "Plus 20 GB, August 2026", M("20.00")), _DIRECT_DEBIT)
    ),
    _monthly_bill(
        "cust-1001",
        2026,
        9,
        "paid",
        (
            ("plan", "Plus 20 GB, September 2026", M("20.00")),
            ("usage", "Data Boost 5 GB (bought 18 Sep)", M("5.00")),
            _DIRECT_DEBIT,
        ),
    ),
    _monthly_bill(
        "cust-1001",
        2026,
        10,
        "due",
        (
            ("plan", "Plus 20 GB, October 2026", M("20.00")),
            ("roaming", "Travel Pass Zone 2, United States, 3 days at 6.00", M("18.00")),
            _DIRECT_DEBIT,
        ),
    ),
    # Tom Becker, Essential 5 GB, paying off a phone.
    _monthly_bill(
        "cust-1002",
        2026,
        9,
        "paid",
        (
            ("plan", "Essential 5 GB, September 2026", M("12.00")),
            ("device", "Device Payment Plan, Nimbus A5 128 GB, instalment 18 of 24", M("15.00")),
        ),
    ),
    _monthly_bill(
        "cust-1002",
        2026,
        10,
        "due",
        (
            ("plan", "Essential 5 GB, October 2026", M("12.00")),
            ("usage", "Calls to international numbers, 23 minutes", M("4.60")),
            ("device", "Device Payment Plan, Nimbus A5 128 GB, instalment 19 of 24", M("15.00")),
        ),
    ),
    # Aiko Tanaka, Unlimited Max.
    _monthly_bill("cust-1003", 2026, 9, "paid", (("plan", "Unlimited Max, September 2026", M("35.00")),)),
    _monthly_bill(
        "cust-1003",
        2026,
        10,
        "due",
        (
            ("plan", "Unlimited Max, October 2026", M("35.00")),
            ("one_off", "eSIM transfer (4th in 12 months)", M("5.00")),
            ("discount", "Loyalty discount", M("-2.00")),
        ),
    ),
)

DEMO_ORDERS: tuple[DemoOrder, ...] = (
    DemoOrder(
        external_id="cust-1001",
        number="NM-100234",
        status="shipped",
        items=(("Nimbus Phone X2 128 GB, midnight blue", 1), ("Clear case for Nimbus Phone X2", 1)),
        placed_on=D(2026, 11, 3),
        carrier="DHL",
        tracking_number="JD0146000038285612",
        shipped_on=D(2026, 11, 4),
        estimated_delivery=D(2026, 11, 7),
    ),
    DemoOrder(
        external_id="cust-1001",
        number="NM-100198",
        status="delivered",
        items=(("Replacement SIM card", 1),),
        placed_on=D(2026, 9, 10),
        carrier="PostNL",
        tracking_number="3SNMBS0198442",
        shipped_on=D(2026, 9, 10),
        estimated_delivery=D(2026, 9, 12),
        delivered_on=D(2026, 9, 12),
    ),
    DemoOrder(
        external_id="cust-1002",
        number="NM-100251",
        status="processing",
        items=(("Wireless charger 15 W", 1), ("USB-C cable, 2 m", 2)),
        placed_on=D(2026, 11, 8),
        estimated_delivery=D(2026, 11, 12),
    ),
    DemoOrder(
        external_id="cust-1002",
        number="NM-100112",
        status="delivered",
        items=(("Nimbus A5 128 GB, graphite", 1),),
        placed_on=D(2025, 4, 2),
        carrier="DHL",
        tracking_number="JD0146000011207734",
        shipped_on=D(2025, 4, 3),
        estimated_delivery=D(2025, 4, 5),
        delivered_on=D(2025, 4, 4),
    ),
    DemoOrder(
        external_id="cust-1003",
        number="NM-100245",
        status="delivered",
        items=(("Nimbus Home Router 5G", 1),),
        placed_on=D(2026, 10, 20),
        carrier="UPS",
        tracking_number="1Z999AA10123456784",
        shipped_on=D(2026, 10, 21),
        estimated_delivery=D(2026, 10, 23),
        delivered_on=D(2026, 10, 23),
    ),
)
