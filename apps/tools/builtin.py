"""The built-in tools: what a telecom's customers most often want done."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from apps.tools.adapters import BusinessAdapter
from apps.tools.registry import KnownValue, ToolContext, ToolSpec, tool_register
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


def _plan_codes(adapter: BusinessAdapter, customer: str) -> Mapping[str, list[KnownValue]]:
    plans = adapter.plans_compare(customer=customer)
    # The current plan too: asking for it gets the system's "you're already on that plan".
    return {"plan_code": [KnownValue(p.code, (p.name,)) for p in (plans.current, *plans.options)]}


# Topic words (ToolSpec.topics). For a read, what a request for it nearly always names; for a change, the
# words of a clear request for it ("switch", "upgrade"; a fault or "ticket"): the chooser proposes a change
# only when one is there.
ORDER_TOPICS: tuple[str, ...] = (
    "order",
    "deliver",
    "ship",
    "parcel",
    "package",
    "track",
    "arriv",
    "courier",
    "dispatch",
)
ORDER_TOPICS += ("received", "nm-")
BILL_TOPICS: tuple[str, ...] = (
    "bill",
    "invoice",
    "charge",
    "pay",
    "cost",
    "fee",
    "amount",
    "price",
    "expensive",
    "owe",
)
BILL_TOPICS += ("statement", "spent", "spend")
PLANS_TOPICS: tuple[str, ...] = (
    "plan",
    "tariff",
    "contract",
    "price",
    "cheaper",
    "bundle",
    "allowance",
    "unlimited",
)
PLANS_TOPICS += ("data", "minutes")
PLAN_CHANGE_TOPICS: tuple[str, ...] = (
    "switch",
    "change",
    "move",
    "upgrade",
    "downgrade",
    "swap",
    "put me",
    "sign me",
)
PLAN_CHANGE_TOPICS += ("go up", "go down", "instead", "put my")
TICKET_TOPICS: tuple[str, ...] = (
    "ticket",
    "fault",
    "technician",
    "report",
    "log ",
    "fix",
    "investigat",
    "n't work",
)
TICKET_TOPICS += ("not work", "stopped", "signal", "no service", "drop", "disconnect", "cutting out")
TICKET_TOPICS += ("cut out", "slow", "broken", "won't", "recogni", "error", "wrong", "can't", "cannot")
TICKET_TOPICS += ("unable",)

# Example requests (ToolSpec.examples). The labelled set that measures the chooser
# (bench/data/tool_requests.jsonl) is written separately and shares no phrasing with these.
ORDER_EXAMPLES = (
    "Has my order shipped yet?",
    "Can you track order NM-100311 for me?",
    "When will my package arrive?",
    "What's the status of my order?",
    "I ordered a phone last week and it still hasn't come",
    "Has order NM-200145 been dispatched?",
    "My delivery is late, where is it?",
    "Which courier is bringing my parcel?",
    "Can I get the tracking number for my purchase?",
    "Is the SIM card I ordered on its way?",
    "NM-100876 status please",
    "I haven't received the headphones I bought online",
    "When is my order expected to be delivered?",
)
BILL_EXAMPLES = (
    "Can you explain my latest bill?",
    "Why was I charged more this month?",
    "What is this extra charge on my invoice?",
    "How much do I have to pay this month?",
    "My invoice is higher than usual",
    "What am I paying for on my bill?",
    "Break down my last bill for me",
    "Why has my monthly payment gone up?",
    "When is my bill due and how much is it?",
    "I don't understand the charges on my statement",
    "There's a roaming fee on my bill I don't recognise",
    "Have I paid my last bill?",
    "What's the total of my most recent invoice?",
)
PLANS_EXAMPLES = (
    "Which plans do you offer?",
    "Is there a cheaper plan for me?",
    "Compare my plan with the others",
    "What plan am I on right now?",
    "Do you have a plan with more data?",
    "Show me the mobile plans on sale",
    "How much would unlimited data cost me?",
    "What are my options for a bigger data allowance?",
    "How does my current tariff compare to the new ones?",
    "What would I save on a smaller plan?",
    "List your tariffs and their prices",
    "Which plan gives me the most minutes?",
)
PLAN_CHANGE_EXAMPLES = (
    "I want to switch to the Unlimited Max plan",
    "Please change my plan to Essential 5 GB",
    "Upgrade me to unlimited",
    "Move me onto the Plus 20 GB plan",
    "Downgrade my plan to the cheapest one",
    "Can you change my tariff to Talk Only?",
    "I'd like to go up to a bigger plan",
    "Switch my subscription to plus-20 please",
    "Put me on the essential plan from next month",
    "Change my mobile plan for me",
    "I want to upgrade my plan now",
)
TICKET_EXAMPLES = (
    "Please open a support ticket",
    "My internet keeps dropping, can someone look into it?",
    "There's no mobile signal in my house",
    "My calls keep cutting out",
    "Can you log a fault for me?",
    "Mobile data stopped working on my phone",
    "I can't make calls since yesterday",
    "Report a problem with my line",
    "My SIM says no service",
    "Raise a ticket about my broken connection",
    "The connection is very slow, please have a technician check it",
    "My text messages are not being delivered",
    "My voicemail doesn't work",
)


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
        topics=ORDER_TOPICS,
        examples=ORDER_EXAMPLES,
        ask_for={"order_number": "your order number (it looks like NM-123456)"},
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
        topics=BILL_TOPICS,
        examples=BILL_EXAMPLES,
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
        topics=PLANS_TOPICS,
        examples=PLANS_EXAMPLES,
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
        topics=PLAN_CHANGE_TOPICS,
        examples=PLAN_CHANGE_EXAMPLES,
        ask_for={"plan_code": "the plan you would like to move to"},
        known_values=_plan_codes,
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
        topics=TICKET_TOPICS,
        examples=TICKET_EXAMPLES,
        from_request=("description",),
        ask_for={"subject": "a short description of the problem"},
    )
)
