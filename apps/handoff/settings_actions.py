"""Admins' writes on the company's handoff setup as audited actions (apps/audit/actions.py): opening hours,
escalation and capacity defaults, routing rules, teams and canned responses.

`check()` lets through the company's admins (a stranger gets NotFound, an agent Forbidden, as on the
settings pages), a platform operator, and `actor=None`, the desk itself (the demo seed, test setup). Rows
name the fields that changed and the ids involved; never a rule's words, a team's name or a canned text.
"""

from __future__ import annotations

import re
import uuid
import zoneinfo
from typing import Any, TypeVar

from django.db import IntegrityError, transaction

from apps.accounts.actions import admin_check
from apps.accounts.models import Tenant, User
from apps.audit.actions import Action
from apps.core.errors import BadRequest, Conflict, NotFound
from apps.handoff.actions import is_agent, uuid_or_404
from apps.handoff.availability import DAYS, settings_for
from apps.handoff.models import CannedResponse, HandoffRule, HandoffSettings, Team

T = TypeVar("T")
_TIME = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$")
_END_OF_DAY = "24:00"  # allowed as the end of an interval only: open until midnight


class SetupAction(Action[T]):
    tenant: Tenant
    actor: User | None

    def check(self) -> None:
        admin_check(tenant=self.tenant, actor=self.actor)


class HandoffSettingsUpdate(SetupAction[HandoffSettings]):
    """Time zone, opening hours, escalation delay and default capacity; None leaves one as it is."""

    action = "settings.handoff"
    target_type = "HandoffSettings"

    def perform(self) -> HandoffSettings:
        row = settings_for(self.tenant)
        values: dict[str, Any] = {}
        timezone_name: str | None = self.params.get("timezone_name")
        if timezone_name is not None:
            try:
                zoneinfo.ZoneInfo(timezone_name)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise BadRequest(f"{timezone_name!r} is not a time zone (try Europe/Berlin).") from None
            values["timezone"] = timezone_name
        hours = self.params.get("hours")
        if hours is not None:
            values["hours"] = hours_valid(hours)
        escalate: int | None = self.params.get("escalate_after_seconds")
        if escalate is not None:
            if not 30 <= escalate <= 86400:
                raise BadRequest("Escalate after 30 seconds to 24 hours.")
            values["escalate_after_seconds"] = escalate
        capacity: int | None = self.params.get("default_capacity")
        if capacity is not None:
            if not 1 <= capacity <= 20:
                raise BadRequest("Capacity goes from 1 to 20 conversations.")
            values["default_capacity"] = capacity
        self.fields = [name for name, value in values.items() if getattr(row, name) != value]
        for name, value in values.items():
            setattr(row, name, value)
        row.save(update_fields=[*values, "updated_at"])
        return row

    def audit_data(self, result: HandoffSettings) -> dict[str, Any]:
        return {"fields": self.fields}


def hours_valid(hours: dict[str, Any]) -> dict[str, list[list[str]]]:
    if not isinstance(hours, dict) or set(hours) - set(DAYS):
        raise BadRequest(f"Hours are given per day: {', '.join(DAYS)}.")
    clean: dict[str, list[list[str]]] = {}
    for day in DAYS:
        spans = hours.get(day, [])
        if not isinstance(spans, list):
            raise BadRequest(f"{day}: a list of [start, end] pairs.")
        out = []
        for span in spans:
            if not (
                isinstance(span, list)
                and len(span) == 2
                and all(isinstance(t, str) for t in span)
                and _TIME.match(span[0])
                and (_TIME.match(span[1]) or span[1] == _END_OF_DAY)
            ):
                raise BadRequest(f'{day}: each interval is ["HH:MM", "HH:MM"].')
            if span[0] >= span[1]:
                raise BadRequest(f"{day}: {span[0]}–{span[1]} ends before it starts.")  # noqa: RUF001
            out.append([span[0], span[1]])
        clean[day] = sorted(out)
    return clean


class HandoffRuleCreate(SetupAction[HandoffRule]):
    """A routing rule: a topic's words or a customer tier sets the handoff's priority and team."""

    action = "handoff_rule.create"
    target_type = "HandoffRule"

    def perform(self) -> HandoffRule:
        kind: str = self.params["kind"]
        value: str = self.params["value"].strip()
        priority: int = self.params.get("priority", 0)
        team_id: uuid.UUID | str | None = self.params.get("team_id")
        if kind not in HandoffRule.Kind.values:
            raise BadRequest("A rule is a topic or a tier.")
        if not value or len(value) > 500:
            raise BadRequest("Give the rule's words (topic) or tier name, up to 500 characters.")
        if not 0 <= priority <= 2:
            raise BadRequest("Priority goes from 0 (normal) to 2 (urgent).")
        team = None
        if team_id:
            team = Team.objects.for_tenant(self.tenant).filter(id=uuid_or_404(team_id)).first()
            if team is None:
                raise BadRequest("There is no such team.")
        return HandoffRule.objects.create(
            tenant=self.tenant, kind=kind, value=value, priority=priority, team=team
        )

    def audit_data(self, result: HandoffRule) -> dict[str, Any]:
        return {"kind": result.kind, "priority": result.priority, "team_id": result.team_id}


class HandoffRuleDelete(SetupAction[uuid.UUID]):
    """The id of the rule deleted; NotFound if the company has no such rule."""

    action = "handoff_rule.delete"

    def perform(self) -> uuid.UUID:
        rule = (
            HandoffRule.objects.for_tenant(self.tenant).filter(id=uuid_or_404(self.params["rule_id"])).first()
        )
        if rule is None:
            raise NotFound("There is no such rule.")
        self.kind, rule_id = rule.kind, rule.id
        rule.delete()
        return rule_id

    def audit_target(self, result: uuid.UUID) -> tuple[str, str]:
        return ("HandoffRule", str(result))

    def audit_data(self, result: uuid.UUID) -> dict[str, Any]:
        return {"kind": self.kind}


class TeamCreate(SetupAction[Team]):
    """A team with its members: only the company's agents (and admins) among the ids given join it."""

    action = "team.create"
    target_type = "Team"

    def perform(self) -> Team:
        name: str = self.params["name"].strip()
        member_ids: list[int] | None = self.params.get("member_ids")
        if not name or len(name) > 100:
            raise BadRequest("A team needs a name of up to 100 characters.")
        try:
            with transaction.atomic():
                team = Team.objects.create(tenant=self.tenant, name=name)
        except IntegrityError:
            raise Conflict(f"There is a team called {name} already.") from None
        self.member_ids: list[int] = []
        if member_ids:
            members = [u for u in User.objects.filter(id__in=member_ids) if is_agent(self.tenant, u)]
            team.members.set(members)
            self.member_ids = sorted(u.id for u in members)
        return team

    def audit_data(self, result: Team) -> dict[str, Any]:
        return {"member_ids": self.member_ids}


class CannedResponseSave(SetupAction[CannedResponse]):
    """A new canned response, or `canned` changed; a shortcut is the company's once."""

    action = "canned.save"
    target_type = "CannedResponse"

    def check(self) -> None:
        canned: CannedResponse | None = self.params.get("canned")
        if canned is not None and canned.tenant_id != self.tenant.id:
            raise NotFound()
        super().check()

    def perform(self) -> CannedResponse:
        title = self.params["title"].strip()
        shortcut = self.params["shortcut"].strip().lstrip("/").lower()
        body = self.params["body"].strip()
        if not title or not body:
            raise BadRequest("A canned response needs a title and a text.")
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", shortcut):
            raise BadRequest("Shortcuts are letters, digits, - and _ (up to 40).")
        if len(body) > 4000:
            raise BadRequest("Canned responses are limited to 4000 characters.")
        existing: CannedResponse | None = self.params.get("canned")
        row = existing or CannedResponse(tenant=self.tenant)
        values = {"title": title[:100], "shortcut": shortcut, "body": body}
        self.created = existing is None
        self.fields = [name for name, value in values.items() if getattr(row, name) != value]
        for name, value in values.items():
            setattr(row, name, value)
        try:
            with transaction.atomic():
                row.save()
        except IntegrityError:
            raise Conflict(f"/{shortcut} is taken already.") from None
        return row

    def audit_data(self, result: CannedResponse) -> dict[str, Any]:
        return {"shortcut": result.shortcut, "created": self.created, "fields": self.fields}


class CannedResponseDelete(SetupAction[uuid.UUID]):
    action = "canned.delete"

    def perform(self) -> uuid.UUID:
        canned: CannedResponse = self.params["canned"]
        if canned.tenant_id != self.tenant.id:
            raise NotFound()
        self.shortcut, canned_id = canned.shortcut, canned.id
        canned.delete()
        return canned_id

    def audit_target(self, result: uuid.UUID) -> tuple[str, str]:
        return ("CannedResponse", str(result))

    def audit_data(self, result: uuid.UUID) -> dict[str, Any]:
        return {"shortcut": self.shortcut}
