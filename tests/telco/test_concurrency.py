"""Two tool runs racing with the same idempotency key make one plan change, not two."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import connection

from apps.telco import services
from apps.telco.errors import TelcoError
from apps.telco.models import Account, PlanChange, Ticket
from apps.telco.records import PlanChangeRecord, TicketRecord

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 4


def _race(target) -> list[object]:
    barrier = threading.Barrier(THREADS)
    results: list[object] = []
    lock = threading.Lock()

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            outcome: object = target()
        except Exception as exc:
            outcome = exc
        finally:
            connection.close()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    return results


def test_concurrent_plan_changes_with_one_key_make_one_change(company: uuid.UUID) -> None:
    services.demo_telco_load(company=company)

    results = _race(
        lambda: services.plan_change(
            company=company, external_id="cust-1002", plan_code="plus-20", idempotency_key="race"
        )
    )

    assert all(isinstance(r, PlanChangeRecord) for r in results), results
    changes = [r for r in results if isinstance(r, PlanChangeRecord)]
    assert len(changes) == THREADS
    assert len({c.reference for c in changes}) == 1
    assert sorted(c.replayed for c in changes) == [False, True, True, True]
    assert PlanChange.objects.for_company(company).count() == 1
    assert Account.objects.for_company(company).get(external_id="cust-1002").plan.code == "plus-20"


def test_concurrent_keys_across_customers_never_share_a_result(company: uuid.UUID) -> None:
    services.demo_telco_load(company=company)
    customers = iter(["cust-1001", "cust-1002", "cust-1003", "cust-1001"])
    pick = threading.Lock()

    def change() -> PlanChangeRecord:
        with pick:
            customer = next(customers)
        plan_code = "unlimited-max" if customer == "cust-1002" else "essential-5"
        return services.plan_change(
            company=company, external_id=customer, plan_code=plan_code, idempotency_key="shared"
        )

    results = _race(change)

    winners = [r for r in results if isinstance(r, PlanChangeRecord) and not r.replayed]
    replays = [r for r in results if isinstance(r, PlanChangeRecord) and r.replayed]
    refused = [r.code for r in results if isinstance(r, TelcoError)]
    assert len(winners) == 1
    assert len(replays) + len(refused) == THREADS - 1
    assert all(r.reference == winners[0].reference for r in replays)
    assert set(refused) <= {"idempotency_conflict"}
    assert PlanChange.objects.for_company(company).count() == 1


def test_concurrent_tickets_with_one_key_make_one_ticket(company: uuid.UUID) -> None:
    services.demo_telco_load(company=company)

    results = _race(
        lambda: services.ticket_create(
            company=company,
            external_id="cust-1003",
            subject="Router keeps rebooting",
            description="It restarts every hour.",
            idempotency_key="race",
        )
    )

    assert all(isinstance(r, TicketRecord) for r in results), results
    assert len({r.number for r in results if isinstance(r, TicketRecord)}) == 1
    assert Ticket.objects.for_company(company).count() == 1
