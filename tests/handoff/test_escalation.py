"""Handoffs nobody claims in the company's time are escalated (apps/handoff/services.py): priority up, the
consoles told, admins emailed; never early, never a claimed one, and the sweep catches what a lost
scheduled check missed."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.utils import timezone

from apps.handoff import escalation, services, tasks
from apps.handoff.models import Handoff
from tests.handoff.conftest import ALL_WEEK, Desk, chat_start, closed_all_week, open_all_day, to_waiting

pytestmark = pytest.mark.django_db


def _waiting(desk: Desk, priority: int = 0) -> Handoff:
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    to_waiting(chat, priority=priority)
    [handoff] = chat.handoffs()
    return handoff


def _age(handoff: Handoff, seconds: int) -> None:
    then = timezone.now() - datetime.timedelta(seconds=seconds)
    Handoff.objects.filter(id=handoff.id).update(created_at=then, queued_at=then)


def _escalated_ago(handoff: Handoff, seconds: int) -> None:
    Handoff.objects.filter(id=handoff.id).update(
        escalated_at=timezone.now() - datetime.timedelta(seconds=seconds)
    )


def _row(handoff: Handoff) -> tuple[Any, ...]:
    row = Handoff.objects.get(id=handoff.id)
    return (row.status, row.priority, row.escalation_level, row.escalated_at, row.updated_at)


@pytest.fixture
def minute(desk: Desk) -> None:
    """Escalation after a minute, at a desk that is open (the clock only runs in the company's hours)."""
    open_all_day(desk.tenant)
    services.handoff_settings_update(tenant=desk.tenant, escalate_after_seconds=60)


def test_a_handoff_is_not_escalated_before_it_is_due(
    desk: Desk,
    minute: None,
    staff_pushes: list[dict[str, Any]],
    mailoutbox: list[Any],
    django_capture_on_commit_callbacks: Any,
) -> None:
    handoff = _waiting(desk)
    assert 59 <= escalation.escalation_delay(handoff.id) <= 61
    staff_pushes.clear()
    before = _row(handoff)
    with django_capture_on_commit_callbacks(execute=True):
        assert escalation.handoff_escalate(handoff_id=handoff.id) is not None  # still waiting: check again
    assert _row(handoff) == before
    assert (staff_pushes, mailoutbox) == ([], [])


def test_a_due_handoff_goes_up_a_level_and_people_are_told(
    desk: Desk,
    minute: None,
    staff_pushes: list[dict[str, Any]],
    mailoutbox: list[Any],
    django_capture_on_commit_callbacks: Any,
) -> None:
    handoff = _waiting(desk, priority=1)
    _age(handoff, 61)
    assert escalation.escalation_delay(handoff.id) == 0
    staff_pushes.clear()
    with django_capture_on_commit_callbacks(execute=True):
        escalated = escalation.handoff_escalate(handoff_id=str(handoff.id))
    assert escalated is not None
    row = Handoff.objects.get(id=handoff.id)
    assert (row.status, row.priority, row.escalation_level) == ("waiting", 2, 1)
    assert row.escalated_at is not None
    [push] = staff_pushes
    assert push["type"] == "handoff.escalated"
    assert (push["handoff"]["id"], push["handoff"]["escalation_level"], push["handoff"]["priority"]) == (
        str(handoff.id),
        1,
        2,
    )
    [email] = mailoutbox
    assert email.to == [desk.admin.email]  # admins only, not the agents
    assert email.subject == "[Nimbus Telecom] A customer has waited 1 min for a person"
    assert f"/staff/{desk.tenant.slug}/console/?handoff={handoff.id}" in email.body

    # The next level is due one period after this one, not at once; priority stops at 3.
    before = _row(handoff)
    with django_capture_on_commit_callbacks(execute=True):
        escalation.handoff_escalate(handoff_id=handoff.id)
    assert _row(handoff) == before
    assert 59 <= escalation.escalation_delay(handoff.id) <= 61
    for level in (2, 3):
        _escalated_ago(handoff, 61)
        with django_capture_on_commit_callbacks(execute=True):
            escalation.handoff_escalate(handoff_id=handoff.id)
        row = Handoff.objects.get(id=handoff.id)
        assert (row.escalation_level, row.priority) == (level, 3)
    assert len(mailoutbox) == 3


def test_outside_the_companys_hours_the_clock_waits_for_the_opening(
    desk: Desk, mailoutbox: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    # Open only the day after tomorrow, 09:00 to 17:00 UTC: the customer was offered email meanwhile.
    day = ALL_WEEK[(timezone.now().weekday() + 2) % 7]
    services.handoff_settings_update(
        tenant=desk.tenant, timezone_name="UTC", hours={day: [["09:00", "17:00"]]}, escalate_after_seconds=60
    )
    handoff = _waiting(desk)
    _age(handoff, 3600)
    opens = datetime.datetime.combine(
        timezone.now().date() + datetime.timedelta(days=2), datetime.time(9, 0), tzinfo=datetime.UTC
    )
    expected = int((opens - timezone.now()).total_seconds()) + 60
    assert expected - 2 <= escalation.escalation_delay(handoff.id) <= expected + 2
    before = _row(handoff)
    with django_capture_on_commit_callbacks(execute=True):
        assert escalation.handoff_escalate(handoff_id=handoff.id) is not None
        assert escalation.handoffs_escalate_due() == 0
    assert _row(handoff) == before
    assert mailoutbox == []
    closed_all_week(desk.tenant)
    assert escalation.escalation_delay(handoff.id) == 86400


def test_a_claimed_or_closed_handoff_is_never_escalated(
    desk: Desk,
    minute: None,
    staff_pushes: list[dict[str, Any]],
    mailoutbox: list[Any],
    django_capture_on_commit_callbacks: Any,
) -> None:
    handoff = _waiting(desk)
    services.handoff_claim(tenant=desk.tenant, handoff_id=handoff.id, agent=desk.alice)
    _age(handoff, 3600)
    staff_pushes.clear()
    before = _row(handoff)
    with django_capture_on_commit_callbacks(execute=True):
        assert escalation.handoff_escalate(handoff_id=handoff.id) is None
        assert escalation.handoff_escalate(handoff_id="00000000-0000-0000-0000-000000000000") is None
    assert _row(handoff) == before
    assert (staff_pushes, mailoutbox) == ([], [])


def test_the_sweep_escalates_every_due_handoff_and_nothing_else(
    desk: Desk,
    minute: None,
    mailoutbox: list[Any],
    make_tenant: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    due, fresh, claimed = _waiting(desk), _waiting(desk), _waiting(desk)
    services.handoff_claim(tenant=desk.tenant, handoff_id=claimed.id, agent=desk.bob)
    _age(due, 90)
    _age(claimed, 90)
    untouched = (_row(fresh), _row(claimed))
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.handoffs_escalate_due() == 1  # the task: one service call
    assert Handoff.objects.get(id=due.id).escalation_level == 1
    assert (_row(fresh), _row(claimed)) == untouched
    with django_capture_on_commit_callbacks(execute=True):
        assert escalation.handoffs_escalate_due() == 0  # swept already; the next level is not due
    assert len(mailoutbox) == 1


def test_without_admin_emails_escalation_still_happens(
    desk: Desk, minute: None, mailoutbox: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    type(desk.admin).objects.filter(id=desk.admin.id).update(email="")
    handoff = _waiting(desk)
    _age(handoff, 61)
    with django_capture_on_commit_callbacks(execute=True):
        escalation.handoff_escalate(handoff_id=handoff.id)
    assert Handoff.objects.get(id=handoff.id).escalation_level == 1
    assert mailoutbox == []


def test_escalation_stops_after_the_last_level(
    desk: Desk, minute: None, mailoutbox: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    handoff = _waiting(desk)
    Handoff.objects.filter(id=handoff.id).update(escalation_level=escalation.MAX_ESCALATIONS, priority=3)
    _escalated_ago(handoff, 600)
    before = _row(handoff)
    with django_capture_on_commit_callbacks(execute=True):
        assert escalation.handoff_escalate(handoff_id=handoff.id) is None  # no further checks scheduled
    assert _row(handoff) == before
    assert mailoutbox == []


def test_a_conversation_transferred_back_to_a_team_is_escalated_from_then(
    desk: Desk, minute: None, mailoutbox: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    to_waiting(chat)
    [handoff] = chat.handoffs()
    _age(handoff, 3600)  # waited an hour once, then an agent took it
    services.handoff_claim(tenant=desk.tenant, handoff_id=handoff.id, agent=desk.alice)
    team = services.team_create(tenant=desk.tenant, name="Billing")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.conversation_transfer(
            tenant=desk.tenant, conversation_id=chat.id, actor=desk.alice, to_team_id=team.id
        )
    assert callbacks  # the escalation check of the new wait is scheduled
    row = Handoff.objects.get(id=handoff.id)
    assert (row.status, row.team_id, row.agent_id) == ("waiting", team.id, None)
    assert row.queued_at is not None
    assert timezone.now() - row.queued_at < datetime.timedelta(seconds=5)
    # Due a full period after going back to the queue, not at once for the old hour.
    assert 59 <= escalation.escalation_delay(handoff.id) <= 61
    assert escalation.handoff_escalate(handoff_id=handoff.id) is not None
    assert Handoff.objects.get(id=handoff.id).escalation_level == 0
    assert mailoutbox == []
