"""The adapter layer between tools and a company's business systems.

A tool never talks to a business system directly: it calls one of these operations on the adapter
configured for the tenant. The customer is always the verified identity of the conversation, passed by the
executor, never a value the model produced. Operations that change something take an idempotency key and
must apply their side effect at most once per key (a repeated key returns the first result).

Two implementations: `DemoAdapter` (the demo telecom's own tables, apps.telco) and `HttpAdapter` (a
company's HTTP API, called through the wrapped client in apps.tools.http with timeouts and a host
allow-list).
"""

from __future__ import annotations

from typing import Protocol

from apps.tools.schemas import BillInfo, OrderInfo, PlanChangeResult, PlansComparison, TicketResult


class BusinessAdapter(Protocol):
    # Names the circuit breaker: one per tenant and adapter, so one company's outage trips only its own.
    breaker_key: str

    def order_lookup(self, *, customer: str, order_number: str) -> OrderInfo:
        """The order if it belongs to `customer`; AdapterError("not_found") otherwise (also for an order
        that exists on another customer's account: its existence is not revealed)."""
        ...

    def bill_latest(self, *, customer: str) -> BillInfo:
        """The customer's most recent bill with its line items; AdapterError("not_found") if none."""
        ...

    def plans_compare(self, *, customer: str) -> PlansComparison:
        """The customer's current plan and every plan on sale, with the monthly difference."""
        ...

    def plan_change(self, *, customer: str, plan_code: str, idempotency_key: str) -> PlanChangeResult:
        """Moves the customer to `plan_code`, once per key. AdapterError("invalid_plan") for an unknown
        or withdrawn plan, AdapterError("same_plan") if it is already the current one."""
        ...

    def ticket_create(
        self, *, customer: str, subject: str, description: str, idempotency_key: str
    ) -> TicketResult:
        """Opens a support ticket, once per key."""
        ...
