"""Agents' and admins' writes on the human side are audited actions (apps/handoff/actions.py,
apps/handoff/settings_actions.py): each writes exactly one row naming its actor and target in the
transaction of the change, the company's chain stays intact, and a refused or failed action writes nothing
and changes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db.models import Max
from django.test import Client

from apps.accounts.models import Role, Tenant, User
from apps.audit.models import AuditEvent
from apps.audit.trail import chain_verify
from apps.core.errors import BadRequest, Conflict, Forbidden, NotFound
from apps.handoff import services
from apps.handoff.availability import settings_for
from apps.handoff.models import CannedResponse, HandoffRule, Note, Team
from tests.handoff.conftest import Desk, agent_online, chat_start, to_human, to_waiting

pytestmark = pytest.mark.django_db

REPLY = "Roaming in Spain is included in your plan, Mr Example."
NOTE = "Customer mentioned a billing dispute; check invoice 2024-17."


class Trail:
    """The company's audit rows written after `mark()`."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.mark()

    def mark(self) -> None:
        self.since = AuditEvent.objects.filter(tenant=self.tenant).aggregate(m=Max("seq"))["m"] or 0

    def new(self) -> list[AuditEvent]:
        return list(AuditEvent.objects.filter(tenant=self.tenant, seq__gt=self.since).order_by("seq"))

    def only(self, action: str) -> AuditEvent:
        """The one new row, which must be `action`; the chain must still verify."""
        rows = self.new()
        assert [row.action for row in rows] == [action]
        assert list(chain_verify(tenant_id=self.tenant.id)) == []
        return rows[0]

    def one_of(self, action: str) -> AuditEvent:
        """The one new row of `action` among others the change caused (a handoff opened by a take over)."""
        rows = [row for row in self.new() if row.action == action]
        assert len(rows) == 1, [row.action for row in self.new()]
        assert list(chain_verify(tenant_id=self.tenant.id)) == []
        return rows[0]


def staff_row(row: AuditEvent, *, actor: User, target_type: str, target_id: object) -> None:
    assert (row.actor_id, row.actor_kind, row.actor_label) == (actor.id, "staff", actor.username)
    assert (row.target_type, row.target_id) == (target_type, str(target_id))
    assert row.tenant_id is not None


def conversation_state(chat: Any) -> tuple[Any, ...]:
    row = chat.row()
    return (row.status, row.agent_id, row.last_seq, [(h.status, h.agent_id) for h in chat.handoffs()])


@pytest.fixture
def trail(desk: Desk) -> Trail:
    return Trail(desk.tenant)


# ---- ownership ---------------------------------------------------------------------------------------------


def test_a_claim_is_audited_with_its_agent_and_handoff(desk: Desk, trail: Trail) -> None:
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    to_waiting(chat)
    [handoff] = chat.handoffs()
    trail.mark()
    claimed = services.handoff_claim(tenant=desk.tenant, handoff_id=handoff.id, agent=desk.alice)
    row = trail.only("handoff.claim")
    staff_row(row, actor=desk.alice, target_type="Handoff", target_id=claimed.id)
    assert row.tenant_id == desk.tenant.id
    assert row.data == {"conversation_id": str(chat.id), "reason": handoff.reason}


def test_take_over_transfer_hand_back_and_resolve_are_each_one_row(desk: Desk, trail: Trail) -> None:
    billing = services.team_create(tenant=desk.tenant, name="Billing")
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    to_waiting(chat)
    [handoff] = chat.handoffs()

    trail.mark()
    services.conversation_take_over(tenant=desk.tenant, conversation_id=chat.id, agent=desk.bob)
    row = trail.only("conversation.take_over")
    staff_row(row, actor=desk.bob, target_type="Conversation", target_id=chat.id)
    assert row.data == {"handoff_id": str(handoff.id), "from": "waiting"}

    trail.mark()
    services.conversation_transfer(
        tenant=desk.tenant, conversation_id=chat.id, actor=desk.bob, to_agent_id=desk.alice.id
    )
    row = trail.only("conversation.transfer")
    staff_row(row, actor=desk.bob, target_type="Conversation", target_id=chat.id)
    assert row.data == {"to": "agent", "agent_id": desk.alice.id, "handoff_id": str(handoff.id)}

    trail.mark()
    services.conversation_transfer(
        tenant=desk.tenant, conversation_id=chat.id, actor=desk.admin, to_team_id=billing.id
    )
    row = trail.only("conversation.transfer")
    staff_row(row, actor=desk.admin, target_type="Conversation", target_id=chat.id)
    assert row.data == {"to": "team", "team_id": str(billing.id), "handoff_id": str(handoff.id)}

    services.handoff_claim(tenant=desk.tenant, handoff_id=handoff.id, agent=desk.alice)
    trail.mark()
    services.conversation_hand_back(tenant=desk.tenant, conversation_id=chat.id, actor=desk.alice)
    row = trail.only("conversation.hand_back")
    staff_row(row, actor=desk.alice, target_type="Conversation", target_id=chat.id)
    assert row.data == {}

    trail.mark()
    services.conversation_resolve(tenant=desk.tenant, conversation_id=chat.id, actor=desk.bob)
    row = trail.only("conversation.resolve")
    staff_row(row, actor=desk.bob, target_type="Conversation", target_id=chat.id)
    assert row.data == {"from": "assistant", "ticket_closed": False}


def test_taking_over_from_the_assistant_is_one_take_over_row(desk: Desk, trail: Trail) -> None:
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    trail.mark()
    handoff = to_human(chat, desk.alice)
    row = trail.one_of("conversation.take_over")
    staff_row(row, actor=desk.alice, target_type="Conversation", target_id=chat.id)
    assert row.data == {"handoff_id": str(handoff.id), "from": "assistant"}


def test_a_reply_is_audited_by_id_and_length_never_its_words(desk: Desk, trail: Trail) -> None:
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    to_human(chat, desk.alice)
    trail.mark()
    reply = services.agent_reply(
        tenant=desk.tenant, conversation_id=chat.id, agent=desk.alice, text=REPLY, client_msg_id="r1"
    )
    row = trail.only("conversation.reply")
    staff_row(row, actor=desk.alice, target_type="Conversation", target_id=chat.id)
    assert row.data == {"message_id": str(reply.message.id), "seq": reply.seq, "length": len(REPLY)}
    assert "Spain" not in json.dumps(row.data)
    # The same client_msg_id again (a resend after a lost acknowledgement) changes nothing: no row.
    trail.mark()
    again = services.agent_reply(
        tenant=desk.tenant, conversation_id=chat.id, agent=desk.alice, text=REPLY, client_msg_id="r1"
    )
    assert (again.created, again.message.id) == (False, reply.message.id)
    assert trail.new() == []


def test_a_note_is_audited_by_id_and_length_never_its_words(desk: Desk, trail: Trail) -> None:
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    note = services.note_add(tenant=desk.tenant, conversation_id=chat.id, author=desk.bob, text=NOTE)
    row = trail.only("conversation.note")
    staff_row(row, actor=desk.bob, target_type="Conversation", target_id=chat.id)
    assert row.data == {"note_id": str(note.id), "length": len(NOTE)}
    assert "billing" not in json.dumps(row.data)


# ---- refused and failed actions ----------------------------------------------------------------------------


def test_refused_ownership_actions_write_no_row_and_change_nothing(
    desk: Desk, trail: Trail, make_tenant: Any, make_user: Any
) -> None:
    editor = make_user(desk.tenant, roles=[Role.EDITOR], username="erin-audit")
    other = make_tenant()
    stranger = make_user(other, roles=[Role.AGENT], username="sam-audit")
    other_trail = Trail(other)
    waiting = chat_start(desk.tenant, "Is roaming free in Spain?")
    to_waiting(waiting)
    [handoff] = waiting.handoffs()
    held = chat_start(desk.tenant, "Can I return my phone?")
    to_human(held, desk.alice)
    before = (conversation_state(waiting), conversation_state(held))
    trail.mark()
    refused = [
        (Forbidden, lambda: services.handoff_claim(tenant=desk.tenant, handoff_id=handoff.id, agent=editor)),
        (NotFound, lambda: services.handoff_claim(tenant=other, handoff_id=handoff.id, agent=stranger)),
        (
            Forbidden,
            lambda: services.conversation_take_over(
                tenant=desk.tenant, conversation_id=waiting.id, agent=editor
            ),
        ),
        # Not the owner, not an admin.
        (
            Forbidden,
            lambda: services.conversation_hand_back(
                tenant=desk.tenant, conversation_id=held.id, actor=desk.bob
            ),
        ),
        (
            Forbidden,
            lambda: services.conversation_resolve(
                tenant=desk.tenant, conversation_id=held.id, actor=desk.bob
            ),
        ),
        (
            Forbidden,
            lambda: services.conversation_transfer(
                tenant=desk.tenant, conversation_id=held.id, actor=desk.bob, to_agent_id=desk.bob.id
            ),
        ),
        (
            Conflict,
            lambda: services.agent_reply(
                tenant=desk.tenant, conversation_id=held.id, agent=desk.bob, text="Hi", client_msg_id="b1"
            ),
        ),
        (
            Forbidden,
            lambda: services.note_add(tenant=desk.tenant, conversation_id=held.id, author=editor, text="Hi"),
        ),
        (
            NotFound,
            lambda: services.note_add(tenant=other, conversation_id=held.id, author=stranger, text="Hi"),
        ),
    ]
    for error, attempt in refused:
        with pytest.raises(error):
            attempt()
    assert trail.new() == []
    assert other_trail.new() == []
    assert (conversation_state(waiting), conversation_state(held)) == before
    assert not Note.objects.filter(conversation_id=held.id).exists()


def test_failing_actions_write_no_row(desk: Desk, trail: Trail) -> None:
    agent_online(desk.tenant, desk.alice, capacity=1)
    held = chat_start(desk.tenant, "Is roaming free in Spain?")
    to_human(held, desk.alice)
    waiting = chat_start(desk.tenant, "Can I return my phone?")
    to_waiting(waiting)
    [handoff] = waiting.handoffs()
    before = (conversation_state(held), conversation_state(waiting))
    trail.mark()
    with pytest.raises(Conflict):  # at her capacity: refused after the conversation's lock
        services.handoff_claim(tenant=desk.tenant, handoff_id=handoff.id, agent=desk.alice)
    with pytest.raises(BadRequest):  # an editor is no agent to transfer to
        services.conversation_transfer(
            tenant=desk.tenant, conversation_id=held.id, actor=desk.alice, to_agent_id=desk.admin.id + 1000
        )
    with pytest.raises(BadRequest):
        services.agent_reply(
            tenant=desk.tenant, conversation_id=held.id, agent=desk.alice, text="   ", client_msg_id="e1"
        )
    with pytest.raises(BadRequest):
        services.handoff_settings_update(tenant=desk.tenant, escalate_after_seconds=5, actor=desk.admin)
    assert trail.new() == []
    assert (conversation_state(held), conversation_state(waiting)) == before


def test_when_the_audit_row_cannot_be_written_the_change_is_undone(
    desk: Desk, trail: Trail, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    to_waiting(chat)
    [handoff] = chat.handoffs()
    before = conversation_state(chat)
    trail.mark()

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr("apps.audit.actions.audit_record", broken)
    with pytest.raises(RuntimeError):
        services.handoff_claim(tenant=desk.tenant, handoff_id=handoff.id, agent=desk.alice)
    assert conversation_state(chat) == before
    assert trail.new() == []


# ---- the company's setup -----------------------------------------------------------------------------------


def test_settings_rules_teams_and_canned_responses_are_audited(desk: Desk, trail: Trail) -> None:
    settings_row = services.handoff_settings_update(tenant=desk.tenant, default_capacity=3)  # the system's
    trail.mark()
    services.handoff_settings_update(
        tenant=desk.tenant, timezone_name="Europe/Berlin", default_capacity=3, actor=desk.admin
    )
    row = trail.only("settings.handoff")
    staff_row(row, actor=desk.admin, target_type="HandoffSettings", target_id=settings_row.id)
    assert row.data == {"fields": ["timezone"]}  # the capacity was sent unchanged

    trail.mark()
    team = services.team_create(
        tenant=desk.tenant, name="Billing", member_ids=[desk.alice.id, desk.bob.id], actor=desk.admin
    )
    row = trail.only("team.create")
    staff_row(row, actor=desk.admin, target_type="Team", target_id=team.id)
    assert row.data == {"member_ids": sorted([desk.alice.id, desk.bob.id])}

    trail.mark()
    rule = services.handoff_rule_create(
        tenant=desk.tenant,
        kind="topic",
        value="invoice dispute",
        priority=2,
        team_id=team.id,
        actor=desk.admin,
    )
    row = trail.only("handoff_rule.create")
    staff_row(row, actor=desk.admin, target_type="HandoffRule", target_id=rule.id)
    assert row.data == {"kind": "topic", "priority": 2, "team_id": str(team.id)}

    trail.mark()
    services.handoff_rule_delete(tenant=desk.tenant, rule_id=rule.id, actor=desk.admin)
    row = trail.only("handoff_rule.delete")
    staff_row(row, actor=desk.admin, target_type="HandoffRule", target_id=rule.id)
    assert row.data == {"kind": "topic"}

    trail.mark()
    canned = services.canned_response_save(
        tenant=desk.tenant,
        title="Roaming",
        shortcut="/roam",
        body="Roaming is free in the EU.",
        actor=desk.admin,
    )
    row = trail.only("canned.save")
    staff_row(row, actor=desk.admin, target_type="CannedResponse", target_id=canned.id)
    assert row.data == {"shortcut": "roam", "created": True, "fields": ["title", "shortcut", "body"]}

    trail.mark()
    services.canned_response_save(
        tenant=desk.tenant,
        title="Roaming",
        shortcut="roam",
        body="Roaming is free.",
        canned=canned,
        actor=desk.admin,
    )
    assert trail.only("canned.save").data == {"shortcut": "roam", "created": False, "fields": ["body"]}

    trail.mark()
    canned_id = canned.id
    services.canned_response_delete(canned=canned, actor=desk.admin)
    row = trail.only("canned.delete")
    staff_row(row, actor=desk.admin, target_type="CannedResponse", target_id=canned_id)
    assert row.data == {"shortcut": "roam"}


def test_setup_by_the_system_is_recorded_as_system(desk: Desk, trail: Trail) -> None:
    team = services.team_create(tenant=desk.tenant, name="Retention")
    row = trail.only("team.create")
    assert (row.actor_id, row.actor_kind, row.actor_label) == (None, "system", "")
    assert (row.target_type, row.target_id) == ("Team", str(team.id))


def test_agents_and_strangers_cannot_change_the_setup_and_nothing_is_written(
    desk: Desk, trail: Trail, make_tenant: Any, make_user: Any
) -> None:
    stranger = make_user(make_tenant(), roles=[Role.ADMIN], username="olga-audit")
    rule = services.handoff_rule_create(tenant=desk.tenant, kind="tier", value="gold")
    canned = services.canned_response_save(tenant=desk.tenant, title="Hi", shortcut="hi", body="Hello!")
    row = settings_for(desk.tenant)
    before = (row.timezone, row.default_capacity)
    trail.mark()
    for actor, error in ((desk.alice, Forbidden), (stranger, NotFound)):
        with pytest.raises(error):
            services.handoff_settings_update(tenant=desk.tenant, timezone_name="Asia/Tokyo", actor=actor)
        with pytest.raises(error):
            services.handoff_rule_create(tenant=desk.tenant, kind="tier", value="silver", actor=actor)
        with pytest.raises(error):
            services.handoff_rule_delete(tenant=desk.tenant, rule_id=rule.id, actor=actor)
        with pytest.raises(error):
            services.team_create(tenant=desk.tenant, name="Sneaky", actor=actor)
        with pytest.raises(error):
            services.canned_response_save(tenant=desk.tenant, title="X", shortcut="x", body="X", actor=actor)
        with pytest.raises(error):
            services.canned_response_delete(canned=canned, actor=actor)
    assert trail.new() == []
    row.refresh_from_db()
    assert (row.timezone, row.default_capacity) == before
    assert list(HandoffRule.objects.filter(tenant=desk.tenant).values_list("value", flat=True)) == ["gold"]
    assert not Team.objects.filter(tenant=desk.tenant).exists()
    assert list(CannedResponse.objects.filter(tenant=desk.tenant).values_list("shortcut", flat=True)) == [
        "hi"
    ]


# ---- through the API and the settings page ----------------------------------------------------------------


def test_a_claim_through_the_api_names_the_signed_in_agent(desk: Desk, trail: Trail) -> None:
    chat = chat_start(desk.tenant, "Is roaming free in Spain?")
    to_waiting(chat)
    [handoff] = chat.handoffs()
    client = Client()
    client.force_login(desk.alice)
    trail.mark()
    response = client.post(f"/api/v1/tenants/{desk.tenant.slug}/handoffs/{handoff.id}/claim/")
    assert response.status_code == 200
    staff_row(trail.only("handoff.claim"), actor=desk.alice, target_type="Handoff", target_id=handoff.id)


def test_setup_through_the_api_and_the_settings_page_names_the_admin(desk: Desk, trail: Trail) -> None:
    client = Client()
    client.force_login(desk.admin)
    response = client.put(
        f"/api/v1/tenants/{desk.tenant.slug}/handoff-settings/",
        {"escalate_after_seconds": 600},
        content_type="application/json",
    )
    assert response.status_code == 200
    row = trail.only("settings.handoff")
    staff_row(row, actor=desk.admin, target_type="HandoffSettings", target_id=row.target_id)
    assert row.data == {"fields": ["escalate_after_seconds"]}

    trail.mark()
    response = client.post(
        f"/staff/{desk.tenant.slug}/handoff-settings/", {"action": "team_add", "name": "Billing"}
    )
    assert response.status_code == 302
    team = Team.objects.get(tenant=desk.tenant, name="Billing")
    staff_row(trail.only("team.create"), actor=desk.admin, target_type="Team", target_id=team.id)
