"""The admins' reports: exact daily series in the company's time zone (handoffs by reason, rate, time to
claim, CSAT), the charts' accessible tables, the JSON API, and who may see them."""

from __future__ import annotations

import datetime
import re
import xml.etree.ElementTree as ET
import zoneinfo
from html.parser import HTMLParser

import pytest
from django.utils import timezone

from apps.accounts.models import Tenant, User
from apps.conversations.models import Conversation, ConversationRating, HandoffReason
from apps.handoff import charts, services
from apps.handoff.models import Handoff
from apps.handoff.reports import DEFAULT_DAYS, DayStats, HandoffReport, handoff_report, report_days

pytestmark = pytest.mark.django_db

UTC = datetime.UTC
NOW = datetime.datetime(2025, 3, 10, 12, 0, tzinfo=UTC)  # 13:00 in Berlin (UTC+1 until 30 March)
R = HandoffReason


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


def conversation(tenant: Tenant, when: datetime.datetime) -> Conversation:
    row = Conversation.objects.create(tenant=tenant)
    Conversation.objects.filter(id=row.id).update(created_at=when)
    return row


def handoff(
    conv: Conversation,
    when: datetime.datetime,
    reason: str,
    *,
    claimed_after: float | None = None,
    agent: User | None = None,
    offline: bool = False,
    status: str = Handoff.Status.RESOLVED,
) -> Handoff:
    row = Handoff.objects.create(
        tenant_id=conv.tenant_id,
        conversation=conv,
        reason=reason,
        status=status,
        agent=agent if claimed_after is not None else None,
        availability={"state": "offline", "why": "closed"} if offline else {"state": "queued", "position": 1},
    )
    claimed = when + datetime.timedelta(seconds=claimed_after) if claimed_after is not None else None
    Handoff.objects.filter(id=row.id).update(created_at=when, claimed_at=claimed)
    return row


def rating(conv: Conversation, when: datetime.datetime, score: int) -> ConversationRating:
    row = ConversationRating.objects.create(
        tenant_id=conv.tenant_id, conversation=conv, episode=1, score=score
    )
    ConversationRating.objects.filter(id=row.id).update(created_at=when)
    return row


@pytest.fixture
def berlin_week(tenant_a, tenant_b) -> Tenant:
    """Tenant A in Berlin with a known week (see the expectations in the tests); tenant B has noise on
    the same days that must never show."""
    tenant = tenant_a.tenant
    services.handoff_settings_update(tenant=tenant, timezone_name="Europe/Berlin")
    agent = tenant_a.agent
    old = conversation(tenant, at("2025-03-03T22:30"))  # 23:30 on 3 March in Berlin: before the week
    c1 = conversation(tenant, at("2025-03-03T23:30"))  # 00:30 on 4 March in Berlin
    c2, c3, c4 = (conversation(tenant, at("2025-03-08T10:00")) for _ in range(3))
    c5 = conversation(tenant, at("2025-03-09T23:30"))  # 00:30 on 10 March in Berlin
    c6 = conversation(tenant, at("2025-03-10T09:00"))

    handoff(old, at("2025-03-03T22:40"), R.CUSTOMER_REQUEST, claimed_after=10, agent=agent)
    handoff(c1, at("2025-03-03T23:40"), R.CUSTOMER_REQUEST, claimed_after=60, agent=agent)
    handoff(c2, at("2025-03-08T10:05"), R.CUSTOMER_REQUEST, claimed_after=120, agent=agent)
    handoff(c3, at("2025-03-08T11:00"), R.ASSISTANT_ABSTAINED, claimed_after=300, agent=agent)
    handoff(c4, at("2025-03-08T12:00"), R.ASSISTANT_ABSTAINED, claimed_after=60, agent=agent)
    handoff(c4, at("2025-03-08T13:00"), R.AGENT_TAKEOVER, claimed_after=0, agent=agent)  # never queued
    handoff(c5, at("2025-03-09T23:45"), R.ANGRY, claimed_after=7200, agent=agent, offline=True)
    handoff(c6, at("2025-03-10T09:10"), R.TENANT_RULE, status=Handoff.Status.CANCELLED)

    rating(old, at("2025-03-03T22:00"), 1)
    rating(c2, at("2025-03-08T15:00"), 5)
    rating(c3, at("2025-03-08T16:00"), 4)
    rating(c4, at("2025-03-08T16:30"), 2)
    rating(c1, at("2025-03-09T23:10"), 3)  # 10 March in Berlin

    other = conversation(tenant_b.tenant, at("2025-03-08T10:00"))
    handoff(other, at("2025-03-08T10:01"), R.ANGRY, claimed_after=999, agent=tenant_b.agent)
    rating(other, at("2025-03-08T10:30"), 1)
    return tenant


def by_day(report: HandoffReport) -> dict[str, DayStats]:
    return {d.day.isoformat(): d for d in report.series}


def test_week_in_the_company_time_zone(berlin_week):
    report = handoff_report(tenant=berlin_week, days=7, now=NOW)

    assert (report.start, report.end, report.timezone) == (
        datetime.date(2025, 3, 4),
        datetime.date(2025, 3, 10),
        "Europe/Berlin",
    )
    assert [d.day.day for d in report.series] == [4, 5, 6, 7, 8, 9, 10]
    assert [d.conversations for d in report.series] == [1, 0, 0, 0, 3, 0, 2]
    assert [d.handoffs for d in report.series] == [1, 0, 0, 0, 4, 0, 2]
    assert [d.rate for d in report.series] == [1.0, None, None, None, 4 / 3, None, 1.0]

    days = by_day(report)
    march8 = days["2025-03-08"]
    assert {k: v for k, v in march8.by_reason.items() if v} == {
        "customer_request": 1,
        "assistant_abstained": 2,
        "agent_takeover": 1,
    }
    assert set(march8.by_reason) == set(R.values)
    # Take-overs are never queued and after-hours handoffs wait for email: neither is time to claim.
    assert (march8.claimed, march8.claim_p50_seconds, march8.claim_p90_seconds) == (3, 120.0, 264.0)
    assert (march8.csat_count, march8.csat_average) == (3, 3.67)
    march4 = days["2025-03-04"]
    assert (march4.claimed, march4.claim_p50_seconds, march4.claim_p90_seconds) == (1, 60.0, 60.0)
    assert (march4.csat_count, march4.csat_average) == (0, None)
    march10 = days["2025-03-10"]
    assert {k: v for k, v in march10.by_reason.items() if v} == {"angry": 1, "tenant_rule": 1}
    assert (march10.claimed, march10.claim_p50_seconds, march10.claim_p90_seconds) == (0, None, None)
    assert (march10.csat_count, march10.csat_average) == (1, 3.0)

    assert [(r.reason, r.count) for r in report.reasons] == [
        ("assistant_abstained", 2),
        ("customer_request", 2),
        ("agent_takeover", 1),
        ("angry", 1),
        ("tenant_rule", 1),
    ]
    assert report.reasons[0].label == "Assistant could not answer"
    assert report.reasons[0].share == 2 / 7

    totals = report.totals
    assert (totals.conversations, totals.handoffs, totals.rate) == (6, 7, 7 / 6)
    # 60, 60, 120, 300 seconds: the median halfway between 60 and 120, the 90th percentile 0.7 of the way
    # from 120 to 300.
    assert (totals.claimed, totals.claim_p50_seconds, totals.claim_p90_seconds) == (4, 90.0, 246.0)
    assert (totals.unclaimed, totals.after_hours) == (1, 1)
    assert (totals.csat_count, totals.csat_average, totals.csat_satisfied) == (4, 3.5, 0.5)
    assert totals.csat_distribution == {1: 0, 2: 1, 3: 1, 4: 1, 5: 1}


def test_the_same_rows_fall_on_other_days_in_another_time_zone(berlin_week):
    services.handoff_settings_update(tenant=berlin_week, timezone_name="UTC")
    report = handoff_report(tenant=berlin_week, days=7, now=NOW)
    assert report.start == datetime.date(2025, 3, 4)
    # In UTC the 23:30 conversations belong to 3 March (outside) and 9 March.
    assert [d.conversations for d in report.series] == [0, 0, 0, 0, 3, 1, 1]
    assert by_day(report)["2025-03-09"].csat_count == 1


def test_every_day_is_present_when_nothing_happened(tenant_a):
    report = handoff_report(tenant=tenant_a.tenant, now=NOW)
    assert report.days == DEFAULT_DAYS == len(report.series)
    assert report.end == datetime.date(2025, 3, 10)
    assert all(d.handoffs == 0 and d.rate is None and d.claim_p50_seconds is None for d in report.series)
    assert report.reasons == []
    assert report.totals.csat_distribution == {1: 0, 2: 0, 3: 0, 4: 0, 5: 0}
    assert (report.totals.rate, report.totals.csat_average, report.totals.csat_satisfied) == (
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("raw", "days"), [("7", 7), ("30", 30), ("90", 90), (None, 30), ("", 30), ("5", 30), ("x", 30)]
)
def test_report_days(raw, days):
    assert report_days(raw) == days


# ---- charts ------------------------------------------------------------------------------------------------


class Tables(HTMLParser):
    """Every <table> of a page as {caption: [[cell text, ...], ...]} (header row included)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._rows: list[list[str]] | None = None
        self._caption: str = ""
        self._text: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag == "table":
            self._rows, self._caption = [], ""
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
        elif tag in ("td", "th", "caption"):
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._rows is not None and self._text is not None:
            self._rows[-1].append(" ".join("".join(self._text).split()))
            self._text = None
        elif tag == "caption" and self._text is not None:
            self._caption = " ".join("".join(self._text).split())
            self._text = None
        elif tag == "table" and self._rows is not None:
            self.tables[self._caption] = self._rows
            self._rows = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


def tables_of(html: str) -> dict[str, list[list[str]]]:
    parser = Tables()
    parser.feed(html)
    return parser.tables


def test_charts_tables_hold_the_exact_numbers(berlin_week):
    report = handoff_report(tenant=berlin_week, days=7, now=NOW)
    html = (
        charts.handoffs_chart(report)
        + charts.rate_chart(report)
        + charts.claim_chart(report)
        + charts.csat_chart(report)
    )
    tables = tables_of(html)

    handoffs = tables["Handoffs per day by reason, 4 Mar to 10 Mar 2025"]
    assert handoffs[0] == [
        "Day",
        "Assistant could not answer",
        "Customer asked for a person",
        "An agent took over",
        "Customer upset",
        "Company rule",
        "Handoffs",
        "Conversations",
        "Handoff rate",
    ]
    assert handoffs[1] == ["4 Mar", "0", "1", "0", "0", "0", "1", "1", "100%"]
    assert handoffs[2] == ["5 Mar", "0", "0", "0", "0", "0", "0", "0", "—"]
    assert handoffs[5] == ["8 Mar", "2", "1", "1", "0", "0", "4", "3", "133%"]
    assert handoffs[7] == ["10 Mar", "0", "0", "0", "1", "1", "2", "2", "100%"]

    rate = tables["Handoff rate per day, 4 Mar to 10 Mar 2025"]
    assert rate[0] == ["Day", "Conversations", "Handoffs", "Handoff rate"]
    assert [row[3] for row in rate[1:]] == ["100%", "—", "—", "—", "133%", "—", "100%"]

    claims = tables["Time to claim per day, 4 Mar to 10 Mar 2025"]
    assert claims[0] == ["Day", "Claimed", "Median", "90th percentile"]
    assert claims[1] == ["4 Mar", "1", "1 min", "1 min"]
    assert claims[5] == ["8 Mar", "3", "2 min", "4 min 24 s"]
    assert claims[7] == ["10 Mar", "0", "—", "—"]

    csat = tables["Customer ratings per day, 4 Mar to 10 Mar 2025"]
    assert csat[5] == ["8 Mar", "3", "3.7"]
    assert csat[7] == ["10 Mar", "1", "3.0"]

    # Each chart is a well-formed SVG image with a title and a description, its reasons told apart by
    # pattern as well as colour, and a legend naming them.
    svgs = re.findall(r"<svg class=\"report-chart\".*?</svg>", html, flags=re.S)
    assert len(svgs) == 4
    for svg in svgs:
        root = ET.fromstring(svg)  # noqa: S314 - our own output
        assert root.get("role") == "img"
        assert [child.tag for child in root][:2] == ["title", "desc"]
        assert root.get("aria-labelledby") == f"{root.get('id')}-title {root.get('id')}-desc"
    desc = ET.fromstring(svgs[0]).find("desc")  # noqa: S314 - our own output
    assert desc is not None
    assert desc.text == (
        "7 handoffs from 4 Mar to 10 Mar 2025, at most 4 on one day. Most frequent reasons: Assistant could "
        "not answer (2), Customer asked for a person (2), An agent took over (1)."
    )
    assert html.count("<pattern ") == 5
    assert 'fill="url(#chart-handoffs-assistant_abstained)"' in html
    assert "Customer upset</li>" in html


def test_empty_charts_say_so(tenant_a):
    report = handoff_report(tenant=tenant_a.tenant, days=30, now=NOW)
    assert charts.handoffs_chart(report) == '<p class="report-empty">No handoffs in the last 30 days.</p>'
    assert "No ratings in the last 30 days." in charts.csat_chart(report)
    assert "was claimed in the last 30 days" in charts.claim_chart(report)
    assert "No conversations in the last 30 days." in charts.rate_chart(report)


def test_durations_and_shares_read_naturally():
    assert [charts.duration_text(s) for s in (None, 0, 59.6, 60, 125, 3600, 5400)] == [
        "—",
        "0 s",
        "1 min",
        "1 min",
        "2 min 5 s",
        "1 h",
        "1 h 30 min",
    ]
    assert [charts.percent_text(s) for s in (None, 0, 0.5, 4 / 3)] == ["—", "0%", "50%", "133%"]


# ---- the page and the API ----------------------------------------------------------------------------------


@pytest.fixture
def recent(tenant_a, tenant_b) -> datetime.date:
    """Two days ago (UTC): three handoffs of tenant A on two conversations, claimed in 30 s and 90 s, and a
    rating; tenant B has its own on the same day."""
    when = timezone.now() - datetime.timedelta(days=2)
    c1, c2 = conversation(tenant_a.tenant, when), conversation(tenant_a.tenant, when)
    agent = tenant_a.agent
    handoff(c1, when, R.CUSTOMER_REQUEST, claimed_after=30, agent=agent)
    handoff(c2, when, R.CUSTOMER_REQUEST, claimed_after=90, agent=agent)
    handoff(c2, when, R.SENSITIVE, status=Handoff.Status.CANCELLED)
    rating(c1, when, 5)
    other = conversation(tenant_b.tenant, when)
    handoff(other, when, R.ANGRY, claimed_after=5, agent=tenant_b.agent)
    return when.astimezone(zoneinfo.ZoneInfo("UTC")).date()


def test_reports_page_for_admins(client_admin_a, recent):
    response = client_admin_a.get("/staff/tenant-a/reports/?days=7")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<a href="?days=7" aria-current="page">Last 7 days</a>' in html
    tables = {caption.split(",")[0]: rows for caption, rows in tables_of(html).items()}
    row = next(r for r in tables["Handoffs per day by reason"] if r[0] == charts.day_text(recent))
    assert row[1:] == ["2", "1", "3", "2", "150%"]
    claim = next(r for r in tables["Time to claim per day"] if r[0] == charts.day_text(recent))
    assert claim[1:] == ["2", "1 min", "1 min 24 s"]
    assert tables["Why conversations went to a person"][1:] == [
        ["Customer asked for a person", "2", "67%"],
        ["Sensitive topic", "1", "33%"],
    ]
    assert tables["Ratings by score"][1] == ["5 out of 5", "1", "100%"]
    assert "Customer upset" not in html  # tenant B's handoff


def test_reports_page_default_period_and_empty_state(client_admin_b):
    response = client_admin_b.get("/staff/tenant-b/reports/?days=abc")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<a href="?days=30" aria-current="page">Last 30 days</a>' in html
    assert "No handoffs in the last 30 days." in html
    assert "No ratings in the last 30 days." in html


def test_reports_page_is_for_admins_only(client_agent_a, client_editor_a, client_admin_b, client_as, recent):
    assert client_agent_a.get("/staff/tenant-a/reports/").status_code == 403
    assert client_editor_a.get("/staff/tenant-a/reports/").status_code == 403
    assert client_admin_b.get("/staff/tenant-a/reports/").status_code == 404
    anonymous = client_as(None).get("/staff/tenant-a/reports/")
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/accounts/login/") or "login" in anonymous["Location"]


def test_reports_api(api_admin_a, recent):
    response = api_admin_a.get("/api/v1/tenants/tenant-a/reports/handoffs/?days=7")
    assert response.status_code == 200
    body = response.json()
    assert (body["days"], body["timezone"], len(body["series"])) == (7, "UTC", 7)
    day = next(d for d in body["series"] if d["day"] == recent.isoformat())
    assert day["by_reason"]["customer_request"] == 2
    assert day["by_reason"]["sensitive"] == 1
    assert (day["handoffs"], day["conversations"], day["rate"]) == (3, 2, 1.5)
    assert (day["claimed"], day["claim_p50_seconds"], day["claim_p90_seconds"]) == (2, 60.0, 84.0)
    assert (day["csat_count"], day["csat_average"]) == (1, 5.0)
    assert body["reasons"] == [
        {"reason": "customer_request", "label": "Customer asked for a person", "count": 2, "share": 2 / 3},
        {"reason": "sensitive", "label": "Sensitive topic", "count": 1, "share": 1 / 3},
    ]
    totals = body["totals"]
    assert (totals["handoffs"], totals["unclaimed"], totals["csat_satisfied"]) == (3, 1, 1.0)
    assert totals["csat_distribution"] == {"1": 0, "2": 0, "3": 0, "4": 0, "5": 1}


def test_reports_api_checks_the_period_and_the_caller(
    api_admin_a, api_agent_a, api_admin_b, api_anonymous, recent
):
    bad = api_admin_a.get("/api/v1/tenants/tenant-a/reports/handoffs/?days=5")
    assert (bad.status_code, bad.json()["code"]) == (400, "bad_request")
    assert api_admin_a.get("/api/v1/tenants/tenant-a/reports/handoffs/").json()["days"] == 30
    denied = api_agent_a.get("/api/v1/tenants/tenant-a/reports/handoffs/")
    assert (denied.status_code, denied.json()["code"]) == (403, "forbidden")
    hidden = api_admin_b.get("/api/v1/tenants/tenant-a/reports/handoffs/")
    assert (hidden.status_code, hidden.json()["code"]) == (404, "not_found")
    assert api_anonymous.get("/api/v1/tenants/tenant-a/reports/handoffs/").status_code == 401
    # B's own report holds only B's handoff.
    own = api_admin_b.get("/api/v1/tenants/tenant-b/reports/handoffs/").json()
    assert [(r["reason"], r["count"]) for r in own["reasons"]] == [("angry", 1)]
