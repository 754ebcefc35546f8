"""Admins' changes to their company are audited actions (apps/accounts/actions.py): settings name the
fields changed (never a secret's value), the identity secret's rotation says only that it rotated, origins,
roles and customers' sessions name their ids. A refused or failed change writes nothing; a change that
changes nothing writes nothing either."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db.models import Max
from django.test import Client

from apps.accounts import services
from apps.accounts.models import AllowedOrigin, Membership, Role, Tenant, User
from apps.audit.models import AuditEvent
from apps.audit.trail import chain_verify
from apps.core.errors import BadRequest, Forbidden, NotFound

pytestmark = pytest.mark.django_db


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
        rows = self.new()
        assert [row.action for row in rows] == [action]
        assert list(chain_verify(tenant_id=self.tenant.id)) == []
        return rows[0]


def by(row: AuditEvent, actor: User | None, target_type: str, target_id: object) -> None:
    kind = "staff" if actor is not None else "system"
    assert (row.actor_id, row.actor_kind) == (actor.id if actor else None, kind)
    assert (row.target_type, row.target_id) == (target_type, str(target_id))


def test_each_company_setting_names_only_the_fields_changed(tenant_a: Any) -> None:
    tenant, admin = tenant_a.tenant, tenant_a.admin
    trail = Trail(tenant)
    services.tenant_assistant_configure(
        tenant=tenant, abstain_threshold=0.55, daily_token_budget=0, actor=admin
    )  # the budget was 0 already
    row = trail.only("settings.assistant")
    by(row, admin, "Tenant", tenant.id)
    assert row.data == {"fields": ["abstain_threshold"]}

    trail.mark()
    services.tenant_answers_configure(
        tenant=tenant, answer_style="quote", handoff_topics=["bereavement"], actor=admin
    )
    row = trail.only("settings.answers")
    by(row, admin, "Tenant", tenant.id)
    assert row.data == {"fields": ["answer_style", "handoff_topics"]}

    trail.mark()
    services.tenant_email_configure(
        tenant=tenant, support_email="Help@A.example", email_assistant_enabled=True, actor=admin
    )
    row = trail.only("settings.email")
    by(row, admin, "Tenant", tenant.id)
    assert row.data == {"fields": ["support_email", "email_assistant_enabled"]}
    assert "help@" not in json.dumps(row.data).lower()

    trail.mark()
    services.tenant_configure(tenant=tenant, name="Acme", origins=["https://a.example"], actor=admin)
    row = trail.only("settings.company")
    assert row.data == {"fields": ["name", "allowed_origins"]}

    # Saved again unchanged: nothing to record.
    trail.mark()
    services.tenant_assistant_configure(tenant=tenant, abstain_threshold=0.55, actor=admin)
    services.tenant_configure(tenant=tenant, name="Acme", origins=["https://a.example/"], actor=admin)
    assert trail.new() == []


def test_one_patch_of_the_company_writes_one_row(tenant_a: Any, api_admin_a: Any) -> None:
    trail = Trail(tenant_a.tenant)
    response = api_admin_a.patch("/api/v1/tenants/tenant-a/", {"daily_token_budget": 5000}, format="json")
    assert response.status_code == 200
    row = trail.only("settings.assistant")
    by(row, tenant_a.admin, "Tenant", tenant_a.tenant.id)
    assert (row.actor_label, row.data) == ("admin_a", {"fields": ["daily_token_budget"]})


def test_rotating_the_secret_records_that_it_rotated_and_nothing_of_it(
    tenant_a: Any, api_admin_a: Any
) -> None:
    trail = Trail(tenant_a.tenant)
    response = api_admin_a.post("/api/v1/tenants/tenant-a/identity-secret/rotate/")
    assert response.status_code == 200
    secret = response.json()["identity_secret"]
    row = trail.only("secret.rotate")
    by(row, tenant_a.admin, "Tenant", tenant_a.tenant.id)
    tenant = Tenant.objects.get(id=tenant_a.tenant.id)
    assert row.data == {"rotated": True, "epoch": tenant.identity_epoch}
    dumped = json.dumps(row.data) + row.actor_label + row.target_id
    assert secret not in dumped
    assert tenant.identity_secret_sealed not in dumped


def test_origins_added_and_removed_on_the_settings_page(tenant_a: Any, client_admin_a: Any) -> None:
    trail = Trail(tenant_a.tenant)
    response = client_admin_a.post("/staff/tenant-a/origins/add/", {"origin": "https://NEW.example:443/"})
    assert response.status_code == 302
    added = AllowedOrigin.objects.get(tenant=tenant_a.tenant, origin="https://new.example")
    row = trail.only("origin.add")
    by(row, tenant_a.admin, "AllowedOrigin", added.id)
    assert row.data == {"origin": "https://new.example"}

    trail.mark()
    client_admin_a.post("/staff/tenant-a/origins/add/", {"origin": "https://new.example"})  # already allowed
    client_admin_a.post("/staff/tenant-a/origins/remove/", {"origin": "https://never.example"})  # not there
    assert trail.new() == []

    response = client_admin_a.post("/staff/tenant-a/origins/remove/", {"origin": "https://new.example"})
    assert response.status_code == 302
    row = trail.only("origin.remove")
    by(row, tenant_a.admin, "AllowedOrigin", added.id)
    assert row.data == {"origin": "https://new.example"}


def test_roles_granted_and_revoked_name_the_person_and_role(tenant_a: Any, make_user: Any) -> None:
    tenant, admin = tenant_a.tenant, tenant_a.admin
    person = make_user(None, username="newcomer")
    trail = Trail(tenant)
    services.membership_grant(tenant=tenant, user=person, role=Role.AGENT, actor=admin)
    row = trail.only("role.grant")
    by(row, admin, "User", person.id)
    assert row.data == {"user_id": person.id, "role": "agent"}

    trail.mark()
    services.membership_grant(tenant=tenant, user=person, role=Role.AGENT, actor=admin)  # held already
    assert trail.new() == []

    assert services.membership_revoke(tenant=tenant, user=person, role=Role.AGENT, actor=admin) == 1
    row = trail.only("role.revoke")
    by(row, admin, "User", person.id)
    assert row.data == {"user_id": person.id, "role": "agent"}


def test_onboarding_grants_are_the_systems(make_tenant: Any, make_user: Any) -> None:
    tenant = make_tenant(slug="onboarded")
    trail = Trail(tenant)
    person = make_user(tenant, roles=[Role.ADMIN], username="first-admin")
    row = trail.only("role.grant")
    by(row, None, "User", person.id)
    assert row.actor_label == ""


def test_ending_a_customers_sessions_is_audited(tenant_a: Any) -> None:
    tenant = tenant_a.tenant
    contact = services.contact_upsert(tenant=tenant, external_id="cust-1", name="Pat Example")
    trail = Trail(tenant)
    services.contact_sessions_revoke(contact=contact, proofs_too=True, actor=tenant_a.admin)
    row = trail.only("contact.sessions_revoke")
    by(row, tenant_a.admin, "Contact", contact.id)
    assert row.data == {"proofs_too": True, "epoch": contact.session_epoch}
    assert "Pat" not in json.dumps(row.data)

    trail.mark()
    services.contact_sessions_revoke(contact=contact, actor_kind=AuditEvent.ActorKind.CUSTOMER)
    row = trail.only("contact.sessions_revoke")
    assert (row.actor_id, row.actor_kind, row.data["proofs_too"]) == (None, "customer", False)


def test_members_who_are_not_admins_and_strangers_change_nothing(
    tenant_a: Any, tenant_b: Any, tenant_snapshot: Any
) -> None:
    tenant = tenant_a.tenant
    contact = services.contact_upsert(tenant=tenant, external_id="cust-2")
    before = tenant_snapshot(tenant)
    trail, trail_b = Trail(tenant), Trail(tenant_b.tenant)
    for actor, error in (
        (tenant_a.agent, Forbidden),
        (tenant_a.editor, Forbidden),
        (tenant_b.admin, NotFound),
    ):
        attempts = [
            lambda a=actor: services.tenant_configure(tenant=tenant, name="Mine now", actor=a),
            lambda a=actor: services.tenant_assistant_configure(tenant=tenant, daily_token_budget=1, actor=a),
            lambda a=actor: services.tenant_answers_configure(tenant=tenant, answer_style="quote", actor=a),
            lambda a=actor: services.tenant_email_configure(
                tenant=tenant, support_email="x@b.example", actor=a
            ),
            lambda a=actor: services.tenant_identity_secret_rotate(tenant=tenant, actor=a),
            lambda a=actor: services.allowed_origin_add(
                tenant=tenant, origin="https://evil.example", actor=a
            ),
            lambda a=actor: services.allowed_origin_remove(
                tenant=tenant, origin="https://a.example", actor=a
            ),
            lambda a=actor: services.membership_grant(tenant=tenant, user=a, role=Role.ADMIN, actor=a),
            lambda a=actor: services.membership_revoke(
                tenant=tenant, user=tenant_a.admin, role=Role.ADMIN, actor=a
            ),
            lambda a=actor: services.contact_sessions_revoke(contact=contact, actor=a),
        ]
        for attempt in attempts:
            tenant.refresh_from_db()
            with pytest.raises(error):
                attempt()
    assert trail.new() == []
    assert trail_b.new() == []
    assert tenant_snapshot(tenant) == before
    contact.refresh_from_db()
    assert contact.session_epoch == 1


def test_failing_changes_write_nothing_and_an_unwritable_row_undoes_the_change(
    tenant_a: Any, tenant_snapshot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant, admin = tenant_a.tenant, tenant_a.admin
    before = tenant_snapshot(tenant)
    trail = Trail(tenant)
    with pytest.raises(BadRequest):
        services.tenant_configure(tenant=tenant, name="Renamed", origins=["ftp://nope"], actor=admin)
    with pytest.raises(BadRequest):
        services.tenant_assistant_configure(tenant=tenant, abstain_threshold=1.5, actor=admin)
    with pytest.raises(BadRequest):
        services.membership_grant(tenant=tenant, user=admin, role="owner", actor=admin)
    assert trail.new() == []

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr("apps.audit.actions.audit_record", broken)
    tenant.refresh_from_db()
    with pytest.raises(RuntimeError):
        services.tenant_configure(tenant=tenant, name="Renamed", actor=admin)
    with pytest.raises(RuntimeError):
        services.membership_revoke(tenant=tenant, user=tenant_a.agent, role=Role.AGENT, actor=admin)
    assert tenant_snapshot(tenant) == before
    assert Membership.objects.filter(tenant=tenant, user=tenant_a.agent, role=Role.AGENT).exists()
    assert trail.new() == []


def test_roles_given_and_removed_in_the_django_admin_name_the_operator(tenant_a: Any, make_user: Any) -> None:
    operator = User.objects.create_superuser(username="operator", email="operator@example.com", password=None)
    person = make_user(None, username="hired-by-operator")
    client = Client()
    client.force_login(operator)
    trail = Trail(tenant_a.tenant)
    response = client.post(
        "/admin/accounts/membership/add/", {"tenant": tenant_a.tenant.id, "user": person.id, "role": "agent"}
    )
    assert response.status_code == 302
    membership = Membership.objects.get(tenant=tenant_a.tenant, user=person)
    row = trail.only("role.grant")
    by(row, operator, "User", person.id)
    assert row.data == {"user_id": person.id, "role": "agent"}

    trail.mark()
    response = client.post(
        f"/admin/accounts/membership/{membership.pk}/change/",
        {"tenant": tenant_a.tenant.id, "user": person.id, "role": "editor"},
    )
    assert response.status_code == 302
    assert [(row.action, row.data["role"]) for row in trail.new()] == [
        ("role.revoke", "agent"),
        ("role.grant", "editor"),
    ]
    assert list(Membership.objects.filter(user=person).values_list("role", flat=True)) == ["editor"]

    trail.mark()
    [membership] = Membership.objects.filter(user=person)
    response = client.post(f"/admin/accounts/membership/{membership.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    by(trail.only("role.revoke"), operator, "User", person.id)
    assert not Membership.objects.filter(user=person).exists()
