"""Writes on the business system. Keyword-only, typed, each its own transaction (STYLE rules 1, 2, 5).

Changes that a retried tool run could repeat take an idempotency key, stored under a unique constraint with
the change itself: a repeated key returns the first result and changes nothing, even when two runs race.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.telco.demo_data import DEMO_ACCOUNTS, DEMO_BILLS, DEMO_ORDERS, DEMO_PLANS, VAT_RATE
from apps.telco.errors import TelcoError
from apps.telco.models import Account, Bill, BillLine, Order, Plan, PlanChange, Ticket
from apps.telco.records import PlanChangeRecord, TicketRecord
from apps.telco.selectors import plan_change_record, ticket_record

__all__ = [
    "DEMO_ACCOUNTS",
    "DemoTelcoResult",
    "demo_telco_load",
    "plan_change",
    "ticket_create",
]

# Random references collide rarely; a few fresh draws make a failure practically impossible.
_REFERENCE_ATTEMPTS = 5


def _account_lock(*, company: uuid.UUID, external_id: str) -> Account:
    """The customer's account, locked until the transaction ends: one change at a time per customer. The
    business system's own lock, outside the desk's lock order (docs/architecture/locking.md): the tool
    adapters call it from a worker that holds no lock of the desk."""
    # No select_related: after waiting for the lock, PostgreSQL re-checks only the locked row, so a join on
    # the plan it has just changed would drop the account from the result.
    account = Account.objects.for_company(company).select_for_update().filter(external_id=external_id).first()
    if account is None:
        raise TelcoError("not_found", "There is no customer account with that id.")
    return account


def _plan_change_stored(*, company: uuid.UUID, account: Account, idempotency_key: str) -> PlanChange | None:
    stored = (
        PlanChange.objects.for_company(company)
        .select_related("from_plan", "to_plan")
        .filter(idempotency_key=idempotency_key)
        .first()
    )
    if stored is not None and stored.account_id != account.pk:
        # Never hand one customer the result of another's change.
        raise TelcoError("idempotency_conflict", "That idempotency key was used for another customer.")
    return stored


def plan_change(
    *, company: uuid.UUID, external_id: str, plan_code: str, idempotency_key: str
) -> PlanChangeRecord:
    """Moves the customer to `plan_code`, once per key; a repeated key returns the first change."""
    with transaction.atomic():
        account = _account_lock(company=company, external_id=external_id)
        stored = _plan_change_stored(company=company, account=account, idempotency_key=idempotency_key)
        if stored is not None:
            return plan_change_record(stored, replayed=True)
        plan = Plan.objects.for_company(company).filter(code=plan_code, is_active=True).first()
        if plan is None:
            raise TelcoError("invalid_plan", f"There is no plan {plan_code!r} on sale.")
        if plan.pk == account.plan_id:
            raise TelcoError("same_plan", f"The customer is already on {plan.name}.")
        from_plan = account.plan
        for _ in range(_REFERENCE_ATTEMPTS):
            try:
                with transaction.atomic():
                    change = PlanChange.objects.create(
                        company=company,
                        account=account,
                        from_plan=from_plan,
                        to_plan=plan,
                        effective_on=timezone.localdate(),
                        reference="PC-" + secrets.token_hex(4).upper(),
                        idempotency_key=idempotency_key,
                    )
                break
            except IntegrityError:
                # Another customer's change took the key meanwhile (the same customer's waits on the lock),
                # or the reference collided: draw again.
                stored = _plan_change_stored(
                    company=company, account=account, idempotency_key=idempotency_key
                )
                if stored is not None:
                    return plan_change_record(stored, replayed=True)
        else:
            raise RuntimeError("could not draw a unique plan change reference")
        account.plan = plan
        account.save(update_fields=["plan", "updated_at"])
    return plan_change_record(change, replayed=False)


def _ticket_stored(*, company: uuid.UUID, account: Account, idempotency_key: str) -> Ticket | None:
    stored = Ticket.objects.for_company(company).filter(idempotency_key=idempotency_key).first()
    if stored is not None and stored.account_id != account.pk:
        raise TelcoError("idempotency_conflict", "That idempotency key was used for another customer.")
    return stored


def ticket_create(
    *, company: uuid.UUID, external_id: str, subject: str, description: str, idempotency_key: str
) -> TicketRecord:
    """Opens a ticket on the customer's account, once per key."""
    with transaction.atomic():
        account = _account_lock(company=company, external_id=external_id)
        stored = _ticket_stored(company=company, account=account, idempotency_key=idempotency_key)
        if stored is not None:
            return ticket_record(stored, replayed=True)
        for _ in range(_REFERENCE_ATTEMPTS):
            try:
                with transaction.atomic():
                    ticket = Ticket.objects.create(
                        company=company,
                        account=account,
                        number=f"TK-{100000 + secrets.randbelow(900000)}",
                        subject=subject.strip(),
                        description=description.strip(),
                        idempotency_key=idempotency_key,
                    )
                break
            except IntegrityError:
                stored = _ticket_stored(company=company, account=account, idempotency_key=idempotency_key)
                if stored is not None:
                    return ticket_record(stored, replayed=True)
        else:
            raise RuntimeError("could not draw a unique ticket number")
    return ticket_record(ticket, replayed=False)


@dataclass(frozen=True)
class DemoTelcoResult:
    plans_created: int
    accounts_created: int
    bills_created: int
    orders_created: int


def _vat(net: Decimal) -> Decimal:
    return (net * VAT_RATE).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@transaction.atomic
def demo_telco_load(*, company: uuid.UUID) -> DemoTelcoResult:
    """Creates the demo telecom's plans, customers, bills and orders for `company`. Only what is missing is
    created and nothing existing is overwritten, so loading twice changes nothing and a plan the demo
    user changed stays changed."""
    plans: dict[str, Plan] = {}
    plans_created = 0
    for p in DEMO_PLANS:
        plan, created = Plan.objects.get_or_create(
            company=company,
            code=p.code,
            defaults={
                "name": p.name,
                "monthly_price": p.monthly_price,
                "data_gb": p.data_gb,
                "minutes": p.minutes,
                "description": p.description,
                "is_active": p.is_active,
            },
        )
        plans[p.code] = plan
        plans_created += created

    accounts: dict[str, Account] = {}
    accounts_created = 0
    for a in DEMO_ACCOUNTS:
        account, created = Account.objects.get_or_create(
            company=company,
            external_id=a.external_id,
            defaults={
                "name": a.name,
                "email": a.email,
                "phone": a.phone,
                "plan": plans[a.plan_code],
                "customer_since": a.customer_since,
            },
        )
        accounts[a.external_id] = account
        accounts_created += created

    bills_created = 0
    for b in DEMO_BILLS:
        net = sum((amount for _, _, amount in b.lines), Decimal("0.00"))
        vat = _vat(net)
        bill, created = Bill.objects.get_or_create(
            account=accounts[b.external_id],
            number=b.number,
            defaults={
                "period_start": b.period_start,
                "period_end": b.period_end,
                "issued_on": b.issued_on,
                "due_on": b.due_on,
                "total": net + vat,
                "status": b.status,
            },
        )
        if created:
            lines = [*b.lines, ("tax", f"VAT {VAT_RATE * 100:.0f}%", vat)]
            BillLine.objects.bulk_create(
                BillLine(bill=bill, kind=kind, description=description, amount=amount, position=position)
                for position, (kind, description, amount) in enumerate(lines, start=1)
            )
            bills_created += 1

    orders_created = 0
    for o in DEMO_ORDERS:
        _, created = Order.objects.get_or_create(
            company=company,
            number=o.number,
            defaults={
                "account": accounts[o.external_id],
                "status": o.status,
                "items": [{"description": d, "quantity": q} for d, q in o.items],
                "carrier": o.carrier,
                "tracking_number": o.tracking_number,
                "placed_on": o.placed_on,
                "shipped_on": o.shipped_on,
                "estimated_delivery": o.estimated_delivery,
                "delivered_on": o.delivered_on,
            },
        )
        orders_created += created

    return DemoTelcoResult(
        plans_created=plans_created,
        accounts_created=accounts_created,
        bills_created=bills_created,
        orders_created=orders_created,
    )
