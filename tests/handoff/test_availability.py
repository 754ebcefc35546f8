"""Can a person answer now (apps/handoff/availability.py)? Opening hours in the company's time zone across
daylight-saving changes, the next opening, the hours in one line, agents' presence going stale, capacity
and free slots, the expected wait, and what the customer is told when they are queued."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.utils import timezone

from apps.accounts.services import contact_upsert
from apps.conversations.models import Conversation
from apps.core.errors import BadRequest
from apps.handoff import services
from apps.handoff.availability import (
    Availability,
    agent_loads,
    availability_now,
    hours_text,
    next_opening,
    open_at,
    settings_for,
    typical_claim_seconds,
)
from apps.handoff.models import Handoff, HandoffSettings, Presence, Ticket
from tests.handoff.conftest import (
    ALL_WEEK,
    Desk,
    agent_online,
    chat_start,
    closed_all_week,
    open_all_day,
    to_human,
    to_waiting,
)

pytestmark = pytest.mark.django_db

UTC = datetime.UTC
WEEKDAYS = {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime.datetime:
    return datetime.datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.fixture
def berlin(desk: Desk) -> HandoffSettings:
    return services.handoff_settings_update(tenant=desk.tenant, timezone_name="Europe/Berlin", hours=WEEKDAYS)


@pytest.mark.parametrize(
    ("moment", "is_open", "opens"),
    [
        # Winter time (UTC+1): Friday 16:30 in Berlin is open, 17:00 is closed.
        (at(2026, 3, 27, 15, 30), True, None),
        # The clocks go forward on Sunday 29 March: Monday 09:00 in Berlin is 07:00 UTC, not 08:00.
        (at(2026, 3, 27, 16, 0), False, at(2026, 3, 30, 7, 0)),
        (at(2026, 3, 29, 12, 0), False, at(2026, 3, 30, 7, 0)),
        (at(2026, 3, 30, 6, 59), False, at(2026, 3, 30, 7, 0)),
        (at(2026, 3, 30, 7, 30), True, None),
        (at(2026, 3, 30, 14, 59), True, None),
        (at(2026, 3, 30, 15, 0), False, at(2026, 3, 31, 7, 0)),
        # Back on 25 October: Monday 09:00 is 08:00 UTC again.
        (at(2026, 10, 23, 15, 30), False, at(2026, 10, 26, 8, 0)),
        (at(2026, 10, 26, 7, 30), False, at(2026, 10, 26, 8, 0)),
        (at(2026, 10, 26, 8, 0), True, None),
    ],
)
def test_hours_are_the_companys_local_hours_across_daylight_saving(
    berlin: HandoffSettings, moment: datetime.datetime, is_open: bool, opens: datetime.datetime | None
) -> None:
    assert open_at(berlin, moment) is is_open
    if opens is not None:
        following = next_opening(berlin, moment)
        assert following == opens
        assert following is not None
        assert str(following.tzinfo) == "Europe/Berlin"


def test_a_desk_open_around_the_clock_has_no_gap_at_midnight(desk: Desk) -> None:
    open_all_day(desk.tenant)
    row = settings_for(desk.tenant)
    for moment in (at(2026, 5, 4, 23, 59, 59), at(2026, 5, 5, 0, 0), at(2026, 5, 10, 12, 0)):
        assert open_at(row, moment) is True
    assert hours_text(row) == "Mon–Sun 00:00–24:00 (UTC)"  # noqa: RUF001


def test_no_hours_at_all_never_opens(desk: Desk) -> None:
    closed_all_week(desk.tenant)
    row = settings_for(desk.tenant)
    assert open_at(row, at(2026, 5, 4, 10, 0)) is False
    assert next_opening(row, at(2026, 5, 4, 10, 0)) is None
    assert hours_text(row) == "no live hours"


def test_the_hours_read_in_one_line(desk: Desk) -> None:
    row = services.handoff_settings_update(tenant=desk.tenant, timezone_name="Europe/Berlin", hours=WEEKDAYS)
    assert hours_text(row) == "Mon–Fri 09:00–17:00 (Europe/Berlin)"  # noqa: RUF001
    row = services.handoff_settings_update(
        tenant=desk.tenant,
        hours={
            "mon": [["09:00", "12:00"], ["13:00", "17:00"]],
            "tue": [["09:00", "17:00"]],
            "wed": [["09:00", "17:00"]],
            "fri": [["09:00", "17:00"]],
            "sat": [["10:00", "14:00"]],
        },
    )
    assert hours_text(row) == (
        "Mon 09:00–12:00, 13:00–17:00, Tue–Wed 09:00–17:00, Fri 09:00–17:00, "  # noqa: RUF001
        "Sat 10:00–14:00 (Europe/Berlin)"  # noqa: RUF001
    )
    # A lunch break is closed; the afternoon opening is the next one.
    assert open_at(row, at(2026, 6, 1, 10, 30)) is False  # Monday 12:30 in Berlin (summer time)
    assert next_opening(row, at(2026, 6, 1, 10, 30)) == at(2026, 6, 1, 11, 0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"timezone_name": "Mars/Olympus"}, "'Mars/Olympus' is not a time zone (try Europe/Berlin)."),
        ({"hours": {"mon": [["17:00", "09:00"]]}}, "mon: 17:00–09:00 ends before it starts."),  # noqa: RUF001
        ({"hours": {"mon": [["24:00", "24:00"]]}}, 'mon: each interval is ["HH:MM", "HH:MM"].'),
        ({"hours": {"mon": [["9:00", "17:00"]]}}, 'mon: each interval is ["HH:MM", "HH:MM"].'),
        ({"hours": {"funday": []}}, "Hours are given per day: mon, tue, wed, thu, fri, sat, sun."),
        ({"hours": {"mon": "09:00-17:00"}}, "mon: a list of [start, end] pairs."),
        ({"escalate_after_seconds": 5}, "Escalate after 30 seconds to 24 hours."),
        ({"default_capacity": 0}, "Capacity goes from 1 to 20 conversations."),
    ],
)
def test_settings_that_make_no_sense_are_refused_and_nothing_changes(
    berlin: HandoffSettings, desk: Desk, change: dict[str, Any], message: str
) -> None:
    before = HandoffSettings.objects.filter(tenant=desk.tenant).values().get()
    with pytest.raises(BadRequest) as caught:
        services.handoff_settings_update(tenant=desk.tenant, **change)
    assert caught.value.message == message
    assert HandoffSettings.objects.filter(tenant=desk.tenant).values().get() == before


# ---- agents ----------------------------------------------------------------------------------------------


def _loads(desk: Desk) -> dict[str, tuple[str, int, int, int]]:
    names = {desk.admin.id: "nina", desk.alice.id: "alice", desk.bob.id: "bob"}
    return {
        names[load.user_id]: (load.status, load.holding, load.capacity, load.free)
        for load in agent_loads(tenant=desk.tenant)
    }


def test_presence_capacity_and_free_slots(desk: Desk, settings: Any) -> None:
    settings.HANDOFF_PRESENCE_STALE_SECONDS = 90
    assert _loads(desk) == {
        "nina": ("offline", 0, 3, 0),
        "alice": ("offline", 0, 3, 0),
        "bob": ("offline", 0, 3, 0),
    }
    agent_online(desk.tenant, desk.alice)
    agent_online(desk.tenant, desk.bob, capacity=2)
    to_human(chat_start(desk.tenant, "Is roaming free in Spain?"), desk.bob)
    assert _loads(desk) == {
        "nina": ("offline", 0, 3, 0),
        "alice": ("online", 0, 3, 3),
        "bob": ("online", 1, 2, 1),
    }

    # Alice steps away: she keeps her connection but takes nothing new.
    services.presence_set(tenant=desk.tenant, user=desk.alice, status="away")
    assert _loads(desk)["alice"] == ("away", 0, 3, 0)
    services.presence_set(tenant=desk.tenant, user=desk.alice, status="online")
    # Bob's console has not been heard from for longer than allowed (a crashed process keeps `sockets`).
    Presence.objects.filter(user=desk.bob).update(
        last_seen_at=timezone.now() - datetime.timedelta(seconds=91)
    )
    assert _loads(desk)["bob"] == ("offline", 1, 2, 0)
    services.presence_seen(tenant=desk.tenant, user=desk.bob)
    assert _loads(desk)["bob"] == ("online", 1, 2, 1)
    # Alice closes her last console.
    services.presence_disconnect(tenant=desk.tenant, user=desk.alice)
    services.presence_disconnect(tenant=desk.tenant, user=desk.alice)  # never below zero
    assert Presence.objects.get(user=desk.alice).sockets == 0
    assert _loads(desk)["alice"] == ("offline", 0, 3, 0)


def test_presence_changes_that_make_no_sense_are_refused(desk: Desk) -> None:
    from apps.core.errors import Forbidden

    agent_online(desk.tenant, desk.alice)
    before = Presence.objects.filter(user=desk.alice).values().get()
    with pytest.raises(BadRequest):
        services.presence_set(tenant=desk.tenant, user=desk.alice, status="busy")
    with pytest.raises(BadRequest):
        services.presence_set(tenant=desk.tenant, user=desk.alice, capacity=21)
    with pytest.raises(Forbidden):
        services.presence_set(tenant=desk.tenant, user=desk.alice, capacity=5, actor=desk.bob)
    assert Presence.objects.filter(user=desk.alice).values().get() == before
    services.presence_set(tenant=desk.tenant, user=desk.alice, capacity=5, actor=desk.admin)
    assert Presence.objects.get(user=desk.alice).capacity == 5


def test_availability_and_the_expected_wait(desk: Desk) -> None:
    closed_all_week(desk.tenant)
    closed = availability_now(tenant=desk.tenant)
    assert (closed.live, closed.why, closed.next_open, closed.hours_text) == (
        False,
        "closed",
        None,
        "no live hours",
    )
    assert closed.expected_wait_seconds(1) is None

    open_all_day(desk.tenant)
    nobody = availability_now(tenant=desk.tenant)
    assert (nobody.live, nobody.why, nobody.agents_online, nobody.free_slots) == (False, "no_agents", 0, 0)

    agent_online(desk.tenant, desk.alice, capacity=1)
    live = availability_now(tenant=desk.tenant)
    assert (live.live, live.why, live.agents_online, live.free_slots, live.typical_claim_seconds) == (
        True,
        "open",
        1,
        1,
        120,
    )
    # One free slot: the first in line waits one typical claim; each later one a round more.
    assert [live.expected_wait_seconds(p) for p in (1, 2, 3)] == [120, 240, 360]
    two = Availability(
        live=True,
        why="open",
        agents_online=2,
        free_slots=0,
        next_open=None,
        hours_text="",
        typical_claim_seconds=60,
    )
    assert [two.expected_wait_seconds(p) for p in (1, 2, 3)] == [120, 120, 180]


def test_the_typical_claim_is_the_median_of_this_weeks_claims(desk: Desk) -> None:
    now = timezone.now()
    assert typical_claim_seconds(tenant=desk.tenant) == 120  # no history yet
    for seconds in (30, 90, 600):
        chat = chat_start(desk.tenant, "Is roaming free in Spain?")
        to_waiting(chat)
        Handoff.objects.filter(conversation_id=chat.id).update(
            created_at=now - datetime.timedelta(seconds=seconds), claimed_at=now
        )
    assert typical_claim_seconds(tenant=desk.tenant) == 90
    old = chat_start(desk.tenant, "Is roaming free in Spain?")
    to_waiting(old)
    Handoff.objects.filter(conversation_id=old.id).update(
        created_at=now - datetime.timedelta(days=8), claimed_at=now - datetime.timedelta(days=7, seconds=1)
    )
    assert typical_claim_seconds(tenant=desk.tenant) == 90  # older than a week: not counted
    for _ in range(3):  # taken straight from the assistant: nobody waited in the queue
        to_human(chat_start(desk.tenant, "Is roaming free in Spain?"), desk.alice)
    assert typical_claim_seconds(tenant=desk.tenant) == 90


# ---- what the customer is told ---------------------------------------------------------------------------


def _status(chat: Any) -> dict[str, Any]:
    [(_, _, data)] = [e for e in chat.events() if e[1] == "handoff.status"][-1:]
    return data


def test_queued_customers_are_told_their_place_and_the_expected_wait(desk: Desk) -> None:
    open_all_day(desk.tenant)
    agent_online(desk.tenant, desk.alice, capacity=1)
    first = chat_start(desk.tenant, "Is roaming free in Spain?")
    to_waiting(first)
    second = chat_start(desk.tenant, "Can I return my phone?")
    to_waiting(second)
    urgent = chat_start(desk.tenant, "My phone was stolen")
    to_waiting(urgent, reason="sensitive", priority=1)
    [h1], [h2], [h3] = first.handoffs(), second.handoffs(), urgent.handoffs()
    assert _status(first) == {
        "handoff_id": str(h1.id),
        "state": "queued",
        "position": 1,
        "expected_wait_seconds": 120,
    }
    assert _status(second) == {
        "handoff_id": str(h2.id),
        "state": "queued",
        "position": 2,
        "expected_wait_seconds": 240,
    }
    # Higher priority goes first.
    assert _status(urgent) == {
        "handoff_id": str(h3.id),
        "state": "queued",
        "position": 1,
        "expected_wait_seconds": 120,
    }
    h1.refresh_from_db()
    assert h1.availability == {"state": "queued", "position": 1, "expected_wait_seconds": 120}
    assert Ticket.objects.count() == 0


def test_outside_hours_the_customer_is_told_when_a_person_is_back_and_asked_for_an_email(desk: Desk) -> None:
    # Open only the day after tomorrow, 09:00 to 10:00 UTC.
    day = ALL_WEEK[(timezone.now().weekday() + 2) % 7]
    services.handoff_settings_update(
        tenant=desk.tenant, timezone_name="UTC", hours={day: [["09:00", "10:00"]]}
    )
    agent_online(desk.tenant, desk.alice)
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    to_waiting(chat)
    [handoff] = chat.handoffs()
    expected_open = datetime.datetime.combine(
        timezone.now().date() + datetime.timedelta(days=2), datetime.time(9, 0), tzinfo=datetime.UTC
    )
    status = _status(chat)
    assert status == {
        "handoff_id": str(handoff.id),
        "state": "offline",
        "why": "closed",
        "hours": f"{day.capitalize()} 09:00–10:00 (UTC)",  # noqa: RUF001
        "next_open": status["next_open"],
        "ask_email": True,
    }
    assert datetime.datetime.fromisoformat(status["next_open"]) == expected_open
    assert Ticket.objects.count() == 0


def test_in_hours_with_nobody_online_a_known_customer_gets_a_ticket_at_once(desk: Desk) -> None:
    open_all_day(desk.tenant, timezone_name="Europe/Berlin")
    contact = contact_upsert(
        tenant=desk.tenant, external_id="cust-1", name="Maria", email="maria@example.com"
    )
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    Conversation.objects.filter(id=chat.id).update(contact=contact)
    to_waiting(chat)
    [handoff] = chat.handoffs()
    [ticket] = Ticket.objects.all()
    assert (ticket.number, ticket.email, ticket.conversation_id, ticket.handoff_id, ticket.status) == (
        1001,
        "maria@example.com",
        chat.id,
        handoff.id,
        "open",
    )
    assert _status(chat) == {
        "handoff_id": str(handoff.id),
        "state": "offline",
        "why": "no_agents",
        "hours": "Mon–Sun 00:00–24:00 (Europe/Berlin)",  # noqa: RUF001
        "next_open": None,
        "ask_email": False,
        "ticket": 1001,
        "email": "m***@example.com",
    }
    handoff.refresh_from_db()
    assert (handoff.availability["ticket"], handoff.availability["state"]) == (1001, "offline")
