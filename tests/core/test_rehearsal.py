"""Rehearsal (apps/core/rehearsal.py): a contextvar that follows a turn into async code and back, and makes
`db_async` run the turn's queries on the caller's own thread, inside the caller's open transaction."""

from __future__ import annotations

import threading

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import connection, transaction

from apps.accounts.models import Tenant
from apps.core.dbasync import db_async
from apps.core.rehearsal import rehearsal, rehearsing


def test_rehearsing_only_inside_the_block_and_after_an_error():
    assert rehearsing() is False
    with rehearsal():
        assert rehearsing() is True
        with rehearsal():
            assert rehearsing() is True
        assert rehearsing() is True
    assert rehearsing() is False
    with pytest.raises(RuntimeError), rehearsal():
        raise RuntimeError("boom")
    assert rehearsing() is False


def test_it_follows_the_turn_into_async_code_and_its_worker_threads_but_not_other_threads():
    seen: dict[str, bool] = {}

    def elsewhere() -> None:
        seen["other thread"] = rehearsing()

    async def turn() -> None:
        seen["event loop"] = rehearsing()
        # As record_metrics and the redaction run: on another thread, with the turn's context.
        seen["worker thread"] = await sync_to_async(rehearsing, thread_sensitive=False)()
        seen["caller thread"] = await sync_to_async(rehearsing, thread_sensitive=True)()

    with rehearsal():
        async_to_sync(turn)()
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
    assert seen == {"event loop": True, "worker thread": True, "caller thread": True, "other thread": False}
    async_to_sync(turn)()
    assert seen["event loop"] is False
    assert seen["worker thread"] is False


@pytest.mark.django_db(transaction=True)
def test_db_async_joins_the_callers_transaction_while_rehearsing_and_its_writes_roll_back(
    settings, make_tenant
):
    settings.DB_ASYNC_THREADS = 2  # production: a pool of threads with their own connections
    tenant = make_tenant(slug="rehearsed")

    def look() -> dict[str, object]:
        return {
            "thread": threading.get_ident(),
            "in_transaction": connection.in_atomic_block,
            "name": Tenant.objects.get(id=tenant.id).name,
        }

    def rename() -> None:
        Tenant.objects.filter(id=tenant.id).update(name="Renamed in the rehearsal")

    async def turn() -> tuple[dict[str, object], dict[str, object]]:
        await db_async(rename)()
        return await db_async(look)(), await db_async(look)()

    with rehearsal(), transaction.atomic():
        first, second = async_to_sync(turn)()
        transaction.set_rollback(True)
    main = threading.get_ident()
    for seen in (first, second):
        assert seen == {"thread": main, "in_transaction": True, "name": "Renamed in the rehearsal"}
    assert Tenant.objects.get(id=tenant.id).name == tenant.name  # rolled back with the caller's transaction

    # Not rehearsing: a pool thread, its own connection, outside the caller's transaction (which it does
    # not see).
    with transaction.atomic():
        Tenant.objects.filter(id=tenant.id).update(name="Uncommitted")
        outside = async_to_sync(db_async(look))()
        transaction.set_rollback(True)
    assert outside["thread"] != main
    assert outside["in_transaction"] is False
    assert outside["name"] == tenant.name
