"""The BusinessAdapter for the demo telecom: its own tables (apps.telco), read and written in-process.

Telco's records become the tools' pydantic outputs here (validated on construction), and telco's refusals
become AdapterError with the same code.
"""

from __future__ import annotations

import uuid

from apps.telco import selectors as telco
from apps.telco import services as telco_services
from apps.telco.errors import TelcoError
from apps.telco.records import AccountRecord, PlanRecord
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


def _plan_info(plan: PlanRecord) -> PlanInfo:
    return PlanInfo(
        code=plan.code,
        name=plan.name,
        monthly_price=plan.monthly_price,
        currency=plan.currency,
        data_gb=plan.data_gb,
        minutes=plan.minutes,
        description=plan.description,
    )


class DemoAdapter:
    def __init__(self, company: uuid.UUID) -> None:
        self.company = company
        self.breaker_key = f"demo:{company}"

    def _account(self, customer: str) -> AccountRecord:
        account = telco.account_find(company=self.company, external_id=customer)
        if account is None:
            raise AdapterError("not_found", "There is no customer account with that id.")
        return account

    def order_lookup(self, *, customer: str, order_number: str) -> OrderInfo:
        self._account(customer)
        order = telco.order_for_account(company=self.company, external_id=customer, order_number=order_number)
        if order is None:
            raise AdapterError("not_found", f"There is no order {order_number} on this account.")
        return OrderInfo(
            number=order.number,
            status=order.status,  # type: ignore[arg-type]  # the model's choices are the Literal's values
            items=[OrderItem(description=i.description, quantity=i.quantity) for i in order.items],
            placed_on=order.placed_on,
            carrier=order.carrier,
            tracking_number=order.tracking_number,
            shipped_on=order.shipped_on,
            estimated_delivery=order.estimated_delivery,
            delivered_on=order.delivered_on,
        )

    def bill_latest(self, *, customer: str) -> BillInfo:
        self._account(customer)
        bill = telco.bill_latest(company=self.company, external_id=customer)
        if bill is None:
            raise AdapterError("not_found", "There is no bill on this account yet.")
        return BillInfo(
            number=bill.number,
            period_start=bill.period_start,
            period_end=bill.period_end,
            issued_on=bill.issued_on,
            due_on=bill.due_on,
            currency=bill.currency,
            total=bill.total,
            status=bill.status,  # type: ignore[arg-type]
            lines=[
                BillLine(description=line.description, kind=line.kind, amount=line.amount)  # type: ignore[arg-type]
                for line in bill.lines
            ],
            previous_total=bill.previous_total,
        )

    def plans_compare(self, *, customer: str) -> PlansComparison:
        current = self._account(customer).plan
        options = [
            PlanOption(
                **_plan_info(plan).model_dump(), monthly_difference=plan.monthly_price - current.monthly_price
            )
            for plan in telco.plans_on_sale(company=self.company)
            if plan.code != current.code
        ]
        return PlansComparison(current=_plan_info(current), options=options)

    def plan_change(self, *, customer: str, plan_code: str, idempotency_key: str) -> PlanChangeResult:
        try:
            change = telco_services.plan_change(
                company=self.company,
                external_id=customer,
                plan_code=plan_code,
                idempotency_key=idempotency_key,
            )
        except TelcoError as exc:
            raise AdapterError(exc.code, exc.message) from exc
        return PlanChangeResult(
            reference=change.reference,
            from_plan=change.from_plan,
            to_plan=change.to_plan,
            effective_on=change.effective_on,
        )

    def ticket_create(
        self, *, customer: str, subject: str, description: str, idempotency_key: str
    ) -> TicketResult:
        try:
            ticket = telco_services.ticket_create(
                company=self.company,
                external_id=customer,
                subject=subject,
                description=description,
                idempotency_key=idempotency_key,
            )
        except TelcoError as exc:
            raise AdapterError(exc.code, exc.message) from exc
        return TicketResult(number=ticket.number, status=ticket.status, subject=ticket.subject)
