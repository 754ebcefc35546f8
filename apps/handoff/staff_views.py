"""Admin pages of the human side: the reports (charts of handoffs, time to claim and CSAT) and the handoff
settings (hours, time zone, escalation, capacity, rules, teams, canned responses).

The settings page works like the tools page: every form posts back here with an `action`, works without
JavaScript, and a success redirects back to its section with a message, so a reload repeats nothing. A
refused change renders the page again with the error as a message and the person's input kept.
"""

from __future__ import annotations

import datetime
import math
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from apps.accounts.models import Role, Tenant, User
from apps.accounts.selectors import access_tenant
from apps.core.errors import BadRequest, HelpdeskError
from apps.handoff import charts, services, settings_selectors
from apps.handoff.availability import DAYS, hours_text, settings_for
from apps.handoff.models import HandoffRule
from apps.handoff.reports import PERIODS, handoff_report, report_days
from apps.handoff.selectors import access_canned_response, canned_responses

ADMINS = [Role.ADMIN]
DAY_LABELS = {
    "mon": "Monday",
    "tue": "Tuesday",
    "wed": "Wednesday",
    "thu": "Thursday",
    "fri": "Friday",
    "sat": "Saturday",
    "sun": "Sunday",
}
PRIORITIES = [(0, "Normal"), (1, "High"), (2, "Urgent")]
MIDNIGHT = "24:00"  # the end of a day open until midnight


@cache
def time_zones() -> list[str]:
    return sorted(zoneinfo.available_timezones())


# ---- reports -----------------------------------------------------------------------------------------------


@login_required
@require_GET
def reports(request: HttpRequest, slug: str) -> HttpResponse:
    tenant, _ = access_tenant(actor=request.user, slug=slug, roles=ADMINS)
    days = report_days(request.GET.get("days"))
    report = handoff_report(tenant=tenant, days=days)
    totals = report.totals
    context = {
        "tenant": tenant,
        "report": report,
        "days": days,
        "periods": PERIODS,
        "period_text": charts.period_text(report),
        "tiles": [
            ("Conversations", str(totals.conversations), ""),
            ("Handoffs", str(totals.handoffs), f"{charts.percent_text(totals.rate)} of conversations"),
            (
                "Time to claim (median)",
                charts.duration_text(totals.claim_p50_seconds),
                f"9 in 10 within {charts.duration_text(totals.claim_p90_seconds)}" if totals.claimed else "",
            ),
            (
                "Never claimed",
                str(totals.unclaimed),
                f"and {totals.after_hours} after hours, answered by email" if totals.after_hours else "",
            ),
            (
                "Customer satisfaction",
                f"{charts.average_text(totals.csat_average)} / 5",
                f"{charts.percent_text(totals.csat_satisfied)} rated 4 or 5 ({totals.csat_count} ratings)",
            ),
        ],
        "reasons": [(r, charts.percent_text(r.share)) for r in report.reasons],
        "distribution": [
            (score, n, round(100 * n / totals.csat_count) if totals.csat_count else 0)
            for score, n in sorted(totals.csat_distribution.items(), reverse=True)
        ],
        "handoffs_chart": charts.handoffs_chart(report),
        "rate_chart": charts.rate_chart(report),
        "claim_chart": charts.claim_chart(report),
        "csat_chart": charts.csat_chart(report),
    }
    return render(request, "handoff/reports.html", context)


# ---- settings ----------------------------------------------------------------------------------------------


@dataclass
class Kept:
    """What the person typed into the form that failed, to show it again."""

    action: str = ""
    target: str = ""  # the row the form was about (a canned response, an agent)
    values: dict[str, Any] = field(default_factory=dict)


def _int(raw: str, what: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise BadRequest(f"{what} must be a whole number.") from None


def _seconds_of_minutes(raw: str) -> int:
    try:
        minutes = float(raw.strip().replace(",", "."))
    except ValueError:
        raise BadRequest("Escalate after is a number of minutes, such as 5 or 2.5.") from None
    if not math.isfinite(minutes):
        raise BadRequest("Escalate after is a number of minutes, such as 5 or 2.5.")
    return round(minutes * 60)


def _time(raw: str) -> str:
    raw = raw.strip()
    try:
        return datetime.time.fromisoformat(raw).strftime("%H:%M")
    except ValueError:
        raise BadRequest(f"{raw!r} is not a time of day (HH:MM).") from None


def hours_from_form(post: QueryDict, current: dict[str, list[list[str]]]) -> dict[str, list[list[str]]]:
    """One interval per day from the form. A day left empty is closed; closing at 00:00 is midnight;
    intervals after a day's first (set through the API) are kept while the day stays open."""
    hours: dict[str, list[list[str]]] = {}
    for day in DAYS:
        start, end = post.get(f"{day}_start", "").strip(), post.get(f"{day}_end", "").strip()
        if not start and not end:
            hours[day] = []
            continue
        if not start or not end:
            raise BadRequest(f"{DAY_LABELS[day]}: give an opening and a closing time, or neither if closed.")
        closing = _time(end)
        # A time input cannot say 24:00: closing at 00:00 means open until midnight.
        hours[day] = [[_time(start), MIDNIGHT if closing == "00:00" else closing], *current.get(day, [])[1:]]
    return hours


def _settings_values(post: QueryDict | None, tenant: Tenant) -> dict[str, Any]:
    row = settings_for(tenant)
    if post is not None:
        return {
            "timezone": post.get("timezone", ""),
            "days": [
                {
                    "key": day,
                    "label": DAY_LABELS[day],
                    "start": post.get(f"{day}_start", ""),
                    "end": post.get(f"{day}_end", ""),
                    "extra": _extra(row.hours, day),
                }
                for day in DAYS
            ],
            "escalate_minutes": post.get("escalate_minutes", ""),
            "default_capacity": post.get("default_capacity", ""),
        }
    spans = row.hours or {}
    return {
        "timezone": row.timezone,
        "days": [
            {
                "key": day,
                "label": DAY_LABELS[day],
                "start": spans[day][0][0] if spans.get(day) else "",
                "end": _closing(spans[day][0][1]) if spans.get(day) else "",
                "extra": _extra(spans, day),
            }
            for day in DAYS
        ],
        "escalate_minutes": _minutes(row.escalate_after_seconds),
        "default_capacity": str(row.default_capacity),
    }


def _closing(value: str) -> str:
    return "00:00" if value == MIDNIGHT else value


def _minutes(seconds: int) -> str:
    return f"{seconds / 60:g}"


def _extra(hours: dict[str, list[list[str]]], day: str) -> str:
    return ", ".join(f"{a}\N{EN DASH}{b}" for a, b in (hours or {}).get(day, [])[1:])


@login_required
@require_http_methods(["GET", "POST"])
def handoff_settings(request: HttpRequest, slug: str) -> HttpResponse:
    tenant, _ = access_tenant(actor=request.user, slug=slug, roles=ADMINS)
    assert isinstance(request.user, User)
    actor = request.user
    here = reverse("handoff-settings", kwargs={"slug": tenant.slug})
    if request.method != "POST":
        return _settings_page(request, tenant, Kept())

    post = request.POST
    action = post.get("action", "")

    def save_settings() -> tuple[str, str]:
        row = settings_for(tenant)
        saved = services.handoff_settings_update(
            tenant=tenant,
            timezone_name=post.get("timezone", "").strip(),
            hours=hours_from_form(post, row.hours or {}),
            escalate_after_seconds=_seconds_of_minutes(post.get("escalate_minutes", "")),
            default_capacity=_int(post.get("default_capacity", ""), "The default capacity"),
            actor=actor,
        )
        return "hours", f"Saved. People answer live {hours_text(saved)}."

    def add_rule() -> tuple[str, str]:
        rule = services.handoff_rule_create(
            tenant=tenant,
            kind=post.get("kind", ""),
            value=post.get("value", ""),
            priority=_int(post.get("priority", "0") or "0", "Priority"),
            team_id=post.get("team") or None,
            actor=actor,
        )
        return "rules", f"Rule added: {rule.get_kind_display().split(' (')[0].lower()} “{rule.value}”."

    def delete_rule() -> tuple[str, str]:
        services.handoff_rule_delete(tenant=tenant, rule_id=post.get("rule", ""), actor=actor)
        return "rules", "Rule deleted."

    def add_team() -> tuple[str, str]:
        member_ids = [_int(raw, "A member") for raw in post.getlist("members")]
        team = services.team_create(
            tenant=tenant, name=post.get("name", ""), member_ids=member_ids, actor=actor
        )
        count = team.members.count()
        return "teams", f"Team {team.name} created with {count} member{'s' if count != 1 else ''}."

    def save_canned() -> tuple[str, str]:
        canned = (
            access_canned_response(tenant=tenant, canned_id=post["canned"]) if post.get("canned") else None
        )
        row = services.canned_response_save(
            tenant=tenant,
            title=post.get("title", ""),
            shortcut=post.get("shortcut", ""),
            body=post.get("body", ""),
            canned=canned,
            actor=actor,
        )
        return "canned", f"Canned response /{row.shortcut} {'saved' if canned else 'added'}."

    def delete_canned() -> tuple[str, str]:
        canned = access_canned_response(tenant=tenant, canned_id=post.get("canned", ""))
        services.canned_response_delete(canned=canned, actor=actor)
        return "canned", f"Canned response /{canned.shortcut} deleted."

    def set_capacity() -> tuple[str, str]:
        agent = settings_selectors.access_tenant_agent(tenant=tenant, user_id=post.get("user", ""))
        capacity = _int(post.get("capacity", ""), "Capacity")
        services.presence_set(tenant=tenant, user=agent, capacity=capacity, actor=actor)
        name = agent.get_full_name() or agent.username
        return "agents", f"{name} may now hold {capacity} conversation{'s' if capacity != 1 else ''} at once."

    handlers: dict[str, Callable[[], tuple[str, str]]] = {
        "settings": save_settings,
        "rule_add": add_rule,
        "rule_delete": delete_rule,
        "team_add": add_team,
        "canned_save": save_canned,
        "canned_delete": delete_canned,
        "capacity": set_capacity,
    }
    handler = handlers.get(action)
    if handler is None:
        messages.error(request, "That action isn't available on this page.")
        return redirect(here)
    try:
        section, done = handler()
    except HelpdeskError as exc:
        messages.error(request, exc.message)
        kept = Kept(
            action=action,
            target=post.get("canned") or post.get("user") or "",
            values={key: post.getlist(key) if key == "members" else post.get(key) for key in post},
        )
        return _settings_page(request, tenant, kept, status=exc.http_status)
    messages.success(request, done)
    return redirect(f"{here}#{section}")


def _settings_page(request: HttpRequest, tenant: Tenant, kept: Kept, *, status: int = 200) -> HttpResponse:
    values = kept.values
    canned_rows = []
    for row in canned_responses(tenant=tenant):
        failed = kept.action == "canned_save" and kept.target == str(row.id)
        canned_rows.append(
            {
                "row": row,
                "open": failed,
                "title": values.get("title") if failed else row.title,
                "shortcut": values.get("shortcut") if failed else row.shortcut,
                "body": values.get("body") if failed else row.body,
            }
        )
    agents = []
    for agent in settings_selectors.agent_rows(tenant=tenant):
        failed = kept.action == "capacity" and kept.target == str(agent.user_id)
        agents.append({"agent": agent, "value": values.get("capacity") if failed else agent.capacity})
    new = {
        "rule": values if kept.action == "rule_add" else {"kind": "topic", "priority": "0"},
        "team": values if kept.action == "team_add" else {},
        "canned": values if kept.action == "canned_save" and not kept.target else {},
    }
    context = {
        "tenant": tenant,
        "settings": _settings_values(request.POST if kept.action == "settings" else None, tenant),
        "hours_text": hours_text(settings_for(tenant)),
        "time_zones": time_zones(),
        "rules": settings_selectors.handoff_rules(tenant=tenant),
        "rule_kinds": HandoffRule.Kind.choices,
        "priorities": [(str(value), label) for value, label in PRIORITIES],
        "tiers": settings_selectors.contact_tiers(tenant=tenant),
        "teams": settings_selectors.teams(tenant=tenant),
        "agents": agents,
        "canned": canned_rows,
        "new": new,
        "new_team_members": [str(m) for m in new["team"].get("members", [])],
    }
    return render(request, "handoff/settings.html", context, status=status)
