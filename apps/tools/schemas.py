"""What tools take and return. Inputs are offered to the model as JSON Schema (OpenAI function specs) and
validated before anything is enqueued; outputs are what a business-system adapter must return, validated
again before the result reaches a prompt or a customer."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ToolInput(BaseModel):
    # Unknown arguments are an error, not silently dropped: a model that invents arguments is caught.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ToolOutput(BaseModel):
    model_config = ConfigDict(extra="ignore")


# ---- inputs -------------------------------------------------------------------------------------------


class OrderLookupInput(ToolInput):
    order_number: str = Field(
        min_length=3,
        max_length=32,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{1,30}[A-Za-z0-9]$",
        description="The order number the customer gave, for example NM-100234.",
    )


class NoInput(ToolInput):
    pass


class PlanChangeInput(ToolInput):
    plan_code: str = Field(
        min_length=2,
        max_length=32,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The code of the plan to switch to, as listed by plans_compare.",
    )


class TicketCreateInput(ToolInput):
    subject: str = Field(min_length=3, max_length=120, description="A short summary of the problem.")
    description: str = Field(
        min_length=3, max_length=2000, description="What the customer reported, in their words."
    )


# ---- outputs ------------------------------------------------------------------------------------------


class OrderItem(ToolOutput):
    description: str
    quantity: int = 1


class OrderInfo(ToolOutput):
    number: str
    status: Literal["placed", "processing", "shipped", "delivered", "cancelled"]
    items: list[OrderItem]
    placed_on: datetime.date
    carrier: str = ""
    tracking_number: str = ""
    shipped_on: datetime.date | None = None
    estimated_delivery: datetime.date | None = None
    delivered_on: datetime.date | None = None


class BillLine(ToolOutput):
    description: str
    kind: Literal["plan", "usage", "roaming", "device", "one_off", "discount", "tax"]
    amount: Decimal


class BillInfo(ToolOutput):
    number: str
    period_start: datetime.date
    period_end: datetime.date
    issued_on: datetime.date
    due_on: datetime.date
    currency: str
    total: Decimal
    status: Literal["paid", "due", "overdue"]
    lines: list[BillLine]
    previous_total: Decimal | None = None


class PlanInfo(ToolOutput):
    code: str
    name: str
    monthly_price: Decimal
    currency: str
    data_gb: int | None  # None: unlimited
    minutes: int | None  # None: unlimited
    description: str = ""


class PlanOption(PlanInfo):
    monthly_difference: Decimal  # against the current plan; negative is cheaper


class PlansComparison(ToolOutput):
    current: PlanInfo
    options: list[PlanOption]


class PlanChangeResult(ToolOutput):
    reference: str
    from_plan: str
    to_plan: str
    effective_on: datetime.date


class TicketResult(ToolOutput):
    number: str
    status: str
    subject: str
