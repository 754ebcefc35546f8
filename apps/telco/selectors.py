"""Reads on the business system, always scoped by company and, for a customer's data, by the customer."""

from __future__ import annotations

import uuid

from apps.telco.models import Account, Bill, Order, Plan, PlanChange, Ticket
from apps.telco.records import (
    AccountRecord,
    BillLineRecord,
    BillRecord,
    OrderItemRecord,
    OrderRecord,
    PlanChangeRecord,
    PlanRecord,
    TicketRecord,
)


def plan_record(plan: Plan) -> PlanRecord:
    return PlanRecord(
        code=plan.code,
        name=plan.name,
        monthly_price=plan.monthly_price,
        currency=plan.currency,
        data_gb=plan.data_gb,
        minutes=plan.minutes,
        description=plan.description,
        is_active=plan.is_active,
    )


def plan_change_record(change: PlanChange, *, replayed: bool) -> PlanChangeRecord:
    return PlanChangeRecord(
        reference=change.reference,
        from_plan=change.from_plan.code,
        to_plan=change.to_plan.code,
        effective_on=change.effective_on,
        replayed=replayed,
    )


def ticket_record(ticket: Ticket, *, replayed: bool) -> TicketRecord:
    return TicketRecord(number=ticket.number, status=ticket.status, subject=ticket.subject, replayed=replayed)


def account_find(*, company: uuid.UUID, external_id: str) -> AccountRecord | None:
    account = (
        Account.objects.for_company(company).select_related("plan").filter(external_id=external_id).first()
    )
    if account is None:
        return None
    return AccountRecord(
        external_id=account.external_id,
        name=account.name,
        email=account.email,
        phone=account.phone,
        customer_since=account.customer_since,
        plan=plan_record(account.plan),
    )


def order_for_account(*, company: uuid.UUID, external_id: str, order_number: str) -> OrderRecord | None:
    """None both for an unknown order and for another customer's: the caller cannot tell them apart."""
    order = (
        Order.objects.for_company(company)
        .filter(account__company=company, account__external_id=external_id)
        # Customers type order numbers in any case ("nm-100234").
        .filter(number__iexact=order_number.strip())
        .first()
    )
    if order is None:
        return None
    items = tuple(
        OrderItemRecord(description=str(item.get("description", "")), quantity=int(item.get("quantity", 1)))
        for item in order.items or []
        if isinstance(item, dict)
    )
    return OrderRecord(
        number=order.number,
        status=order.status,
        items=items,
        carrier=order.carrier,
        tracking_number=order.tracking_number,
        placed_on=order.placed_on,
        shipped_on=order.shipped_on,
        estimated_delivery=order.estimated_delivery,
        delivered_on=order.delivered_on,
    )


def bill_latest(*, company: uuid.UUID, external_id: str) -> BillRecord | None:
    """The most recently issued bill with its lines in order, and the total of the bill before it."""
    bills = list(
        Bill.objects.filter(account__company=company, account__external_id=external_id).order_by(
            "-issued_on", "-period_end", "-number"
        )[:2]
    )
    if not bills:
        return None
    latest = bills[0]
    lines = tuple(
        BillLineRecord(description=line.description, kind=line.kind, amount=line.amount)
        for line in latest.lines.order_by("position")
    )
    return BillRecord(
        number=latest.number,
        period_start=latest.period_start,
        period_end=latest.period_end,
        issued_on=latest.issued_on,
        due_on=latest.due_on,
        currency=latest.currency,
        total=latest.total,
        status=latest.status,
        lines=lines,
        previous_total=bills[1].total if len(bills) > 1 else None,
    )


def plans_on_sale(*, company: uuid.UUID) -> list[PlanRecord]:
    """Active plans, cheapest first."""
    return [
        plan_record(plan)
        for plan in Plan.objects.for_company(company).filter(is_active=True).order_by("monthly_price", "code")
    ]
