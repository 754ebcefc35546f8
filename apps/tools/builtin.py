"""The built-in tools: what a telecom's customers most often want done."""

from __future__ import annotations

from decimal import Decimal

from apps.tools.registry import ToolContext, ToolSpec, tool_register
from apps.tools.schemas import (
    BillInfo,
    NoInput,
    OrderInfo,
    OrderLookupInput,
    PlanChangeInput,
    PlanChangeResult,
    PlansComparison,
    TicketCreateInput,
    TicketResult,
)


def _money(amount: Decimal, currency: str) -> str:
    return f"{amount:.2f} {currency}"


def _order_summary(order: OrderInfo) -> str:
    items = ", ".join(
        f"{i.quantity} x {i.description}" if i.quantity != 1 else i.description for i in order.items
    )
    text = f"Order {order.number} ({items}) is {order.status}"
    if order.status == "shipped":
        text += f", shipped on {order.shipped_on}" if order.shipped_on else ""
        if order.carrier:
            text += f" with {order.carrier}"
        if order.tracking_number:
            text += f", tracking number {order.tracking_number}"
        if order.estimated_delivery:
            text += f"; expected by {order.estimated_delivery}"
    elif order.status == "delivered" and order.delivered_on:
        text += f" (delivered on {order.delivered_on})"
    elif order.status in ("placed", "processing") and order.estimated_delivery:
        text += f"; expected by {order.estimated_delivery}"
    return text + "."


def _bill_summary(bill: BillInfo) -> str:
    lines = "; ".join(f"{line.description} {_money(line.amount, bill.currency)}" for line in bill.lines)
    text = (
        f"Your latest bill {bill.number} covers {bill.period_start} to {bill.period_end}: "
        f"{_money(bill.total, bill.currency)}, due on {bill.due_on} ({bill.status}). It is made of: {lines}."
    )
    if bill.previous_total is not None:
        change = bill.total - bill.previous_total
        if change:
            direction = "more" if change > 0 else "less"
            text += f" That is {_money(abs(change), bill.currency)} {direction} than the bill before."
    return text


def _plans_summary(plans: PlansComparison) -> str:
    def allowance(value: int | None, unit: str) -> str:
        return f"unlimited {unit}" if value is None else f"{value} {unit}"

    current = plans.current
    text = (
        f"You are on {current.name} ({current.code}): "
        f"{_money(current.monthly_price, current.currency)} a month, "
        f"{allowance(current.data_gb, 'GB')}, {allowance(current.minutes, 'minutes')}."
    )
    for option in plans.options:
        sign = "+" if option.monthly_difference >= 0 else "-"
        text += (
            f" {option.name} ({option.code}): {_money(option.monthly_price, option.currency)} a month "
            f"({sign}{_money(abs(option.monthly_difference), option.currency)}), "
            f"{allowance(option.data_gb, 'GB')}, {allowance(option.minutes, 'minutes')}."
        )
    return text


def _plan_change_summary(change: PlanChangeResult) -> str:
    return (
        f"Your plan changes from {change.from_plan} to {change.to_plan} on {change.effective_on} "
        f"(reference {change.reference})."
    )


def _ticket_summary(ticket: TicketResult) -> str:
    return f"Ticket {ticket.number} is {ticket.status}: {ticket.subject}."


def _order_lookup(ctx: ToolContext, args: OrderLookupInput) -> OrderInfo:
    return ctx.adapter.order_lookup(customer=ctx.customer, order_number=args.order_number.upper())


def _bill_explain(ctx: ToolContext, args: NoInput) -> BillInfo:
    return ctx.adapter.bill_latest(customer=ctx.customer)


def _plans_compare(ctx: ToolContext, args: NoInput) -> PlansComparison:
    return ctx.adapter.plans_compare(customer=ctx.customer)


def _plan_change(ctx: ToolContext, args: PlanChangeInput) -> PlanChangeResult:
    return ctx.adapter.plan_change(
        customer=ctx.customer, plan_code=args.plan_code, idempotency_key=ctx.idempotency_key
    )


def _ticket_create(ctx: ToolContext, args: TicketCreateInput) -> TicketResult:
    return ctx.adapter.ticket_create(
        customer=ctx.customer,
        subject=args.subject,
        description=args.description,
        idempotency_key=ctx.idempotency_key,
    )


ORDER_LOOKUP = tool_register(
    ToolSpec(
        name="order_lookup",
        label="Look up an order",
        description="Look up the status and delivery of one of the customer's orders by its order number.",
        input_model=OrderLookupInput,
        output_model=OrderInfo,
        effect="read",
        timeout_seconds=10,
        progress="Checking your order…",
        topics=("order", "deliver", "ship", "parcel", "package", "track", "arriv", "courier", "nm-"),
        run=_order_lookup,
        summarize=_order_summary,
    )
)
BILL_EXPLAIN = tool_register(
    ToolSpec(
        name="bill_explain",
        label="Explain the latest bill",
        description="Get the customer's latest bill with its line items, to explain what they pay for.",
        input_model=NoInput,
        output_model=BillInfo,
        effect="read",
        timeout_seconds=10,
        progress="Looking at your latest bill…",
        topics=("bill", "invoice", "charge", "pay", "cost", "fee", "amount", "price", "expensive"),
        run=_bill_explain,
        summarize=_bill_summary,
    )
)
PLANS_COMPARE = tool_register(
    ToolSpec(
        name="plans_compare",
        label="Compare plans",
        description="List the mobile plans on sale and compare each with the customer's current plan.",
        input_model=NoInput,
        output_model=PlansComparison,
        effect="read",
        timeout_seconds=10,
        progress="Comparing plans…",
        topics=("plan", "tariff", "contract", "price", "cheaper", "upgrade", "downgrade", "switch", "bundle"),
        run=_plans_compare,
        summarize=_plans_summary,
    )
)
PLAN_CHANGE = tool_register(
    ToolSpec(
        name="plan_change",
        label="Change plan",
        description="Switch the customer to another mobile plan. Only when the customer asks to change plan.",
        input_model=PlanChangeInput,
        output_model=PlanChangeResult,
        effect="change",
        timeout_seconds=15,
        progress="Changing your plan…",
        run=_plan_change,
        summarize=_plan_change_summary,
        describe=lambda args: f"change your plan to {args.get('plan_code', '?')}",
    )
)
TICKET_CREATE = tool_register(
    ToolSpec(
        name="ticket_create",
        label="Create a support ticket",
        description="Open a support ticket for a problem that needs follow-up by the technical team.",
        input_model=TicketCreateInput,
        output_model=TicketResult,
        effect="change",
        timeout_seconds=15,
        progress="Opening a ticket…",
        run=_ticket_create,
        summarize=_ticket_summary,
        describe=lambda args: f"open a support ticket: “{args.get('subject', '')}”",
        free_text_fields=("subject", "description"),
    )
)
