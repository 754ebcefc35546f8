"""What the selectors and services hand out: plain frozen values, detached from the ORM, so a caller can
neither lazy-load another company's rows nor save a change behind the services' back."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class PlanRecord:
    code: str
    name: str
    monthly_price: Decimal
    currency: str
    data_gb: int | None  # None: unlimited
    minutes: int | None  # None: unlimited
    description: str
    is_active: bool


@dataclass(frozen=True)
class AccountRecord:
    external_id: str
    name: str
    email: str
    phone: str
    customer_since: datetime.date
    plan: PlanRecord


@dataclass(frozen=True)
class OrderItemRecord:
    description: str
    quantity: int


@dataclass(frozen=True)
class OrderRecord:
    number: str
    status: str
    items: tuple[OrderItemRecord, ...]
    carrier: str
    tracking_number: str
    placed_on: datetime.date
    shipped_on: datetime.date | None
    estimated_delivery: datetime.date | None
    delivered_on: datetime.date | None


@dataclass(frozen=True)
class BillLineRecord:
    description: str
    kind: str
    amount: Decimal


@dataclass(frozen=True)
class BillRecord:
    number: str
    period_start: datetime.date
    period_end: datetime.date
    issued_on: datetime.date
    due_on: datetime.date
    currency: str
    total: Decimal
    status: str
    lines: tuple[BillLineRecord, ...]
    previous_total: Decimal | None  # the bill issued before this one, if any


@dataclass(frozen=True)
class PlanChangeRecord:
    reference: str
    from_plan: str  # plan codes
    to_plan: str
    effective_on: datetime.date
    replayed: bool  # True: the key had been used, nothing changed this time


@dataclass(frozen=True)
class TicketRecord:
    number: str
    status: str
    subject: str
    replayed: bool
