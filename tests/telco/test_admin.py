"""The Django admin's telco pages render for an operator, and are read-only."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from apps.accounts.models import User
from apps.telco import services
from apps.telco.models import Account, Bill, BillLine, Order, Plan, PlanChange, Ticket

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(db: None) -> Client:
    operator = User.objects.create_superuser(username="operator", email="op@example.com", password=None)
    client = Client()
    client.force_login(operator)
    return client


def test_every_changelist_and_change_page_renders(seeded: uuid.UUID, operator_client: Client) -> None:
    services.plan_change(
        company=seeded, external_id="cust-1001", plan_code="unlimited-max", idempotency_key="k"
    )
    services.ticket_create(
        company=seeded,
        external_id="cust-1001",
        subject="No signal",
        description="None at all.",
        idempotency_key="k",
    )
    for model in (Plan, Account, Bill, BillLine, Order, PlanChange, Ticket):
        base = f"/admin/telco/{model._meta.model_name}/"
        obj = model.objects.first()
        assert obj is not None
        for url in (base, f"{base}?q=cust-1001", f"{base}{obj.pk}/change/"):
            response = operator_client.get(url)
            assert response.status_code == 200, url


def test_bill_page_shows_its_lines(seeded: uuid.UUID, operator_client: Client) -> None:
    bill = Bill.objects.get(account__company=seeded, number="NB-202610-1001")

    page = operator_client.get(f"/admin/telco/bill/{bill.pk}/change/").content.decode()

    assert "Travel Pass Zone 2, United States, 3 days at 6.00" in page
    assert "VAT 21%" in page


def test_the_admin_cannot_add_or_delete(seeded: uuid.UUID, operator_client: Client) -> None:
    plan = Plan.objects.for_company(seeded).get(code="essential-5")

    assert operator_client.get("/admin/telco/plan/add/").status_code == 403
    assert operator_client.post(f"/admin/telco/plan/{plan.pk}/delete/", {"post": "yes"}).status_code == 403
    assert operator_client.post(f"/admin/telco/plan/{plan.pk}/change/", {"name": "Hacked"}).status_code == 403
    assert Plan.objects.for_company(seeded).get(code="essential-5").name == "Essential 5 GB"
