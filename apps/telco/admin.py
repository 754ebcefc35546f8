"""Django admin for platform operators: a read-only window on the demo telecom's business tables.

Changes go through the services (plan changes and tickets are idempotent there); the admin only shows.
"""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.telco.models import Account, Bill, BillLine, Order, Plan, PlanChange, Ticket


class ReadOnly:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


_BILL_FIELDS = ("number", "period_start", "period_end", "issued_on", "due_on", "total", "status")
_ORDER_FIELDS = ("number", "status", "placed_on", "carrier", "tracking_number", "estimated_delivery")


class BillLineInline(ReadOnly, admin.TabularInline[BillLine, Bill]):
    model = BillLine
    extra = 0
    fields = readonly_fields = ("position", "kind", "description", "amount")
    ordering = ["position"]


class BillInline(ReadOnly, admin.TabularInline[Bill, Account]):
    model = Bill
    extra = 0
    fields = readonly_fields = _BILL_FIELDS
    show_change_link = True


class OrderInline(ReadOnly, admin.TabularInline[Order, Account]):
    model = Order
    extra = 0
    fields = readonly_fields = _ORDER_FIELDS
    show_change_link = True


@admin.register(Plan)
class PlanAdmin(ReadOnly, admin.ModelAdmin[Plan]):
    list_display = ["code", "name", "monthly_price", "currency", "data_gb", "minutes", "is_active", "company"]
    list_filter = ["is_active", "company"]
    search_fields = ["code", "name"]


@admin.register(Account)
class AccountAdmin(ReadOnly, admin.ModelAdmin[Account]):
    list_display = ["external_id", "name", "email", "plan", "customer_since", "company"]
    list_filter = ["plan__code", "company"]
    search_fields = ["external_id", "name", "email", "phone"]
    list_select_related = ["plan"]
    inlines = [BillInline, OrderInline]


@admin.register(Bill)
class BillAdmin(ReadOnly, admin.ModelAdmin[Bill]):
    list_display = [
        "number",
        "account",
        "period_start",
        "period_end",
        "issued_on",
        "due_on",
        "total",
        "status",
    ]
    list_filter = ["status", "issued_on", "account__company"]
    search_fields = ["number", "account__external_id", "account__name"]
    list_select_related = ["account"]
    date_hierarchy = "issued_on"
    inlines = [BillLineInline]


@admin.register(BillLine)
class BillLineAdmin(ReadOnly, admin.ModelAdmin[BillLine]):
    list_display = ["bill", "position", "kind", "description", "amount"]
    list_filter = ["kind"]
    search_fields = ["bill__number", "description"]
    list_select_related = ["bill"]


@admin.register(Order)
class OrderAdmin(ReadOnly, admin.ModelAdmin[Order]):
    list_display = ["number", "account", "status", "placed_on", "carrier", "tracking_number", "delivered_on"]
    list_filter = ["status", "carrier", "company"]
    search_fields = ["number", "tracking_number", "account__external_id", "account__name"]
    list_select_related = ["account"]


@admin.register(PlanChange)
class PlanChangeAdmin(ReadOnly, admin.ModelAdmin[PlanChange]):
    list_display = ["reference", "account", "from_plan", "to_plan", "effective_on", "created_at"]
    list_filter = ["effective_on", "company"]
    search_fields = ["reference", "idempotency_key", "account__external_id"]
    list_select_related = ["account", "from_plan", "to_plan"]


@admin.register(Ticket)
class TicketAdmin(ReadOnly, admin.ModelAdmin[Ticket]):
    list_display = ["number", "account", "subject", "status", "created_at"]
    list_filter = ["status", "company"]
    search_fields = ["number", "subject", "account__external_id", "idempotency_key"]
    list_select_related = ["account"]
