"""Nimbus Telecom's business tables. Every row belongs to one company (the helpdesk tenant's id): several
companies share one database, so every query starts from `for_company(company)` or from an account found
that way. `company` is a plain UUID, not a foreign key: this app sits below the helpdesk's own apps."""

from __future__ import annotations

import uuid
from typing import Any, Self

from django.db import models

from apps.core.models import BaseModel


class CompanyScopedQuerySet(models.QuerySet[Any]):
    def for_company(self, company: uuid.UUID) -> Self:
        return self.filter(company=company)


class Plan(BaseModel):
    company = models.UUIDField(db_index=True)
    code = models.SlugField(max_length=32)
    name = models.CharField(max_length=100)
    monthly_price = models.DecimalField(max_digits=8, decimal_places=2)
    currency = models.CharField(max_length=3, default="EUR")
    data_gb = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: unlimited.")
    minutes = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: unlimited.")
    description = models.TextField(blank=True)
    # A withdrawn plan stays on the accounts that have it but is no longer sold.
    is_active = models.BooleanField(default=True)

    objects = CompanyScopedQuerySet.as_manager()

    class Meta:
        ordering = ["monthly_price", "code"]
        constraints = [
            models.UniqueConstraint(fields=["company", "code"], name="telco_uniq_plan_code"),
            models.CheckConstraint(condition=models.Q(monthly_price__gte=0), name="telco_plan_price_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class Account(BaseModel):
    company = models.UUIDField(db_index=True)
    # The company's own customer id, the one the helpdesk verifies (e.g. "cust-1001").
    external_id = models.CharField(max_length=128)
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=32, blank=True)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="accounts")
    customer_since = models.DateField()

    objects = CompanyScopedQuerySet.as_manager()

    class Meta:
        ordering = ["external_id"]
        constraints = [
            models.UniqueConstraint(fields=["company", "external_id"], name="telco_uniq_account_external_id"),
        ]

    def __str__(self) -> str:
        return f"{self.external_id} {self.name}"


class BillStatus(models.TextChoices):
    PAID = "paid", "Paid"
    DUE = "due", "Due"
    OVERDUE = "overdue", "Overdue"


class Bill(BaseModel):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="bills")
    number = models.CharField(max_length=32)
    period_start = models.DateField()
    period_end = models.DateField()
    issued_on = models.DateField()
    due_on = models.DateField()
    total = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3, default="EUR")
    status = models.CharField(max_length=8, choices=BillStatus.choices, default=BillStatus.DUE)

    class Meta:
        ordering = ["-issued_on", "number"]
        constraints = [
            models.UniqueConstraint(fields=["account", "number"], name="telco_uniq_bill_number"),
            models.CheckConstraint(
                condition=models.Q(status__in=BillStatus.values), name="telco_bill_status"
            ),
            models.CheckConstraint(
                condition=models.Q(period_end__gte=models.F("period_start")), name="telco_bill_period_order"
            ),
            models.CheckConstraint(
                condition=models.Q(due_on__gte=models.F("issued_on")), name="telco_bill_due_after_issue"
            ),
        ]
        indexes = [models.Index(fields=["account", "-issued_on"], name="telco_bill_latest_idx")]

    def __str__(self) -> str:
        return self.number


class BillLineKind(models.TextChoices):
    PLAN = "plan", "Plan"
    USAGE = "usage", "Usage"
    ROAMING = "roaming", "Roaming"
    DEVICE = "device", "Device"
    ONE_OFF = "one_off", "One-off"
    DISCOUNT = "discount", "Discount"
    TAX = "tax", "Tax"


class BillLine(BaseModel):
    bill = models.ForeignKey(Bill, on_delete=models.CASCADE, related_name="lines")
    description = models.CharField(max_length=200)
    kind = models.CharField(max_length=8, choices=BillLineKind.choices)
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["bill", "position"]
        constraints = [
            models.UniqueConstraint(fields=["bill", "position"], name="telco_uniq_bill_line_position"),
            models.CheckConstraint(
                condition=models.Q(kind__in=BillLineKind.values), name="telco_bill_line_kind"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.description} {self.amount}"


class OrderStatus(models.TextChoices):
    PLACED = "placed", "Placed"
    PROCESSING = "processing", "Processing"
    SHIPPED = "shipped", "Shipped"
    DELIVERED = "delivered", "Delivered"
    CANCELLED = "cancelled", "Cancelled"


class Order(BaseModel):
    company = models.UUIDField(db_index=True)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="orders")
    number = models.CharField(max_length=32)
    status = models.CharField(max_length=12, choices=OrderStatus.choices, default=OrderStatus.PLACED)
    # [{"description": "Nimbus Phone X2", "quantity": 1}, ...]
    items = models.JSONField(default=list, blank=True)
    carrier = models.CharField(max_length=64, blank=True)
    tracking_number = models.CharField(max_length=64, blank=True)
    placed_on = models.DateField()
    shipped_on = models.DateField(null=True, blank=True)
    estimated_delivery = models.DateField(null=True, blank=True)
    delivered_on = models.DateField(null=True, blank=True)

    objects = CompanyScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-placed_on", "number"]
        constraints = [
            models.UniqueConstraint(fields=["company", "number"], name="telco_uniq_order_number"),
            models.CheckConstraint(
                condition=models.Q(status__in=OrderStatus.values), name="telco_order_status"
            ),
        ]

    def __str__(self) -> str:
        return self.number


class PlanChange(BaseModel):
    company = models.UUIDField(db_index=True)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="plan_changes")
    from_plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    to_plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    effective_on = models.DateField()
    reference = models.CharField(max_length=16)
    # One change per key: a retried tool run finds the first change instead of making a second one.
    idempotency_key = models.CharField(max_length=128)

    objects = CompanyScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["company", "idempotency_key"], name="telco_uniq_plan_change_key"),
            models.UniqueConstraint(fields=["company", "reference"], name="telco_uniq_plan_change_ref"),
            models.CheckConstraint(
                condition=~models.Q(from_plan=models.F("to_plan")), name="telco_plan_change_differs"
            ),
        ]

    def __str__(self) -> str:
        return self.reference


class TicketStatus(models.TextChoices):
    OPEN = "open", "Open"
    PENDING = "pending", "Pending"
    SOLVED = "solved", "Solved"
    CLOSED = "closed", "Closed"


class Ticket(BaseModel):
    company = models.UUIDField(db_index=True)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="tickets")
    number = models.CharField(max_length=16)
    subject = models.CharField(max_length=200)
    description = models.TextField()
    status = models.CharField(max_length=8, choices=TicketStatus.choices, default=TicketStatus.OPEN)
    idempotency_key = models.CharField(max_length=128)

    objects = CompanyScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["company", "number"], name="telco_uniq_ticket_number"),
            models.UniqueConstraint(fields=["company", "idempotency_key"], name="telco_uniq_ticket_key"),
            models.CheckConstraint(
                condition=models.Q(status__in=TicketStatus.values), name="telco_ticket_status"
            ),
        ]

    def __str__(self) -> str:
        return self.number
