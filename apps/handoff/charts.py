"""Server-rendered SVG charts for the reports page: no JavaScript, no CDN, nothing to load.

Each chart is a `role="img"` SVG with a <title> and a <desc> that says what it shows in one sentence, and a
visually hidden table right after it with every number, for screen readers. Handoff reasons differ by
pattern as well as by colour (Okabe-Ito and Tol colours, safe for the common colour-vision deficiencies),
and the legend names each one. Every piece of text goes through format_html.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from apps.handoff import svg
from apps.handoff.reports import HandoffReport

INK = svg.INK


@dataclass(frozen=True)
class Style:
    colour: str
    pattern: str  # solid | diagonal | back | cross | dots | horizontal | vertical | grid | wide
    ink: str = "#ffffff"  # the pattern's marks: white on dark colours, dark on light ones


REASON_STYLES: dict[str, Style] = {
    "customer_request": Style("#0072B2", "solid"),
    "assistant_abstained": Style("#E69F00", "diagonal", INK),
    "assistant_failed": Style("#D55E00", "cross"),
    "llm_unavailable": Style("#CC79A7", "dots", INK),
    "tool_failed": Style("#009E73", "horizontal"),
    "tool_approval": Style("#56B4E9", "vertical", INK),
    "sensitive": Style("#F0E442", "back", INK),
    "angry": Style("#882255", "grid"),
    "tenant_rule": Style("#44AA99", "wide", INK),
    "agent_takeover": Style("#999933", "dots"),
    "email_reply": Style("#6C6C6C", "diagonal"),
}
_FALLBACK = Style("#8c959f", "solid")

_MARKS = {
    "solid": "",
    "diagonal": '<path d="M-2,2 l4,-4 M0,8 l8,-8 M6,10 l4,-4" stroke-width="1.5"/>',
    "back": '<path d="M-2,6 l4,4 M0,0 l8,8 M6,-2 l4,4" stroke-width="1.5"/>',
    "cross": '<path d="M0,0 l8,8 M8,0 l-8,8" stroke-width="1.2"/>',
    "dots": '<circle cx="2" cy="2" r="1.3" stroke="none"/><circle cx="6" cy="6" r="1.3" stroke="none"/>',
    "horizontal": '<path d="M0,2 h8 M0,6 h8" stroke-width="1.3"/>',
    "vertical": '<path d="M2,0 v8 M6,0 v8" stroke-width="1.3"/>',
    "grid": '<path d="M0,4 h8 M4,0 v8" stroke-width="1"/>',
    "wide": '<path d="M-2,2 l4,-4 M0,8 l8,-8 M6,10 l4,-4" stroke-width="3"/>',
}


def reason_style(reason: str) -> Style:
    return REASON_STYLES.get(reason, _FALLBACK)


# ---- numbers as people read them ---------------------------------------------------------------------------


def duration_text(seconds: float | None) -> str:
    """ "45 s", "2 min 5 s", "1 h 20 min"; an em dash when there is nothing to show."""
    if seconds is None:
        return "—"
    total = round(seconds)
    if total < 60:
        return f"{total} s"
    if total < 3600:
        minutes, rest = divmod(total, 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, rest = divmod(total, 3600)
    minutes = rest // 60
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def percent_text(share: float | None) -> str:
    return "—" if share is None else f"{round(share * 100)}%"


def average_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def day_text(day: datetime.date) -> str:
    return f"{day.day} {day:%b}"


def period_text(report: HandoffReport) -> str:
    return f"{day_text(report.start)} to {day_text(report.end)} {report.end.year}"


# ---- the charts --------------------------------------------------------------------------------------------


def handoffs_chart(report: HandoffReport, *, chart_id: str = "chart-handoffs") -> SafeString:
    """Handoffs per day, stacked by reason."""
    if not report.totals.handoffs:
        return svg.empty(f"No handoffs in the last {report.days} days.")
    reasons = [r.reason for r in report.reasons]
    labels = {r.reason: r.label for r in report.reasons}
    top_count = max(d.handoffs for d in report.series)
    step = svg.count_step(top_count)
    ticks = svg.tick_values(step, top_count)
    top = ticks[-1]
    days = len(report.series)
    bar = svg.PLOT_W / days * 0.7
    defs = format_html(
        "<defs>{}</defs>",
        format_html_join(
            "",
            '<pattern id="{}-{}" width="8" height="8" patternUnits="userSpaceOnUse">'
            '<rect width="8" height="8" fill="{}"/><g stroke="{}" fill="{}">{}</g></pattern>',
            (
                (chart_id, r, s.colour, s.ink, s.ink, mark_safe(_MARKS[s.pattern]))  # noqa: S308 - constants
                for r, s in ((r, reason_style(r)) for r in reasons)
            ),
        ),
    )
    body = svg.y_axis(ticks, top, lambda v: f"{v:g}", "Handoffs")
    for i, day in enumerate(report.series):
        base = float(svg.TOP + svg.PLOT_H)
        for reason in reasons:
            n = day.by_reason.get(reason, 0)
            if not n:
                continue
            height = svg.PLOT_H * n / top
            base -= height
            body.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="{}" fill="url(#{}-{})" '
                    'stroke="#ffffff" stroke-width="0.75"><title>{}: {} {}</title></rect>',
                    svg.num(svg.x_at(i, days) - bar / 2),
                    svg.num(base),
                    svg.num(bar),
                    svg.num(height),
                    chart_id,
                    reason,
                    day_text(day.day),
                    labels[reason],
                    n,
                )
            )
    body += svg.x_axis([day_text(d.day) for d in report.series], f"Day ({report.timezone})")
    most = ", ".join(f"{r.label} ({r.count})" for r in report.reasons[:3])
    desc = (
        f"{report.totals.handoffs} handoffs from {period_text(report)}, at most {top_count} on one day. "
        f"Most frequent reasons: {most}."
    )
    legend = svg.legend([(labels[r], svg.swatch(f"url(#{chart_id}-{r})")) for r in reasons])
    table = svg.table(
        f"Handoffs per day by reason, {period_text(report)}",
        ["Day", *(labels[r] for r in reasons), "Handoffs", "Conversations", "Handoff rate"],
        [
            [
                day_text(d.day),
                *(str(d.by_reason.get(r, 0)) for r in reasons),
                str(d.handoffs),
                str(d.conversations),
                percent_text(d.rate),
            ]
            for d in report.series
        ],
    )
    return format_html(
        "{}{}{}", svg.frame(chart_id, "Handoffs per day by reason", desc, body, defs=defs), legend, table
    )


def rate_chart(report: HandoffReport, *, chart_id: str = "chart-rate") -> SafeString:
    """The share of conversations that went to a person, per day (no point on a day without any)."""
    if report.totals.rate is None:
        return svg.empty(f"No conversations in the last {report.days} days.")
    days = len(report.series)
    highest = max((d.rate or 0) * 100 for d in report.series)
    ticks = svg.tick_values(svg.count_step(max(highest, 10)), max(highest, 10))
    top = ticks[-1]
    body = svg.y_axis(ticks, top, lambda v: f"{v:g}%", "Handoff rate")
    body += svg.line(
        [
            None if d.rate is None else (svg.x_at(i, days), svg.y_at(d.rate * 100, top))
            for i, d in enumerate(report.series)
        ],
        "#0072B2",
        "none",
        "circle",
    )
    body += svg.x_axis([day_text(d.day) for d in report.series], f"Day ({report.timezone})")
    totals = report.totals
    desc = (
        f"{percent_text(totals.rate)} of the {totals.conversations} conversations started from "
        f"{period_text(report)} went to a person ({totals.handoffs} handoffs)."
    )
    table = svg.table(
        f"Handoff rate per day, {period_text(report)}",
        ["Day", "Conversations", "Handoffs", "Handoff rate"],
        [
            [day_text(d.day), str(d.conversations), str(d.handoffs), percent_text(d.rate)]
            for d in report.series
        ],
    )
    return format_html("{}{}", svg.frame(chart_id, "Handoff rate per day", desc, body), table)


def claim_chart(report: HandoffReport, *, chart_id: str = "chart-claim") -> SafeString:
    """Time to claim per day: the median (solid line, circles) and the 90th percentile (dashed, squares)."""
    if not report.totals.claimed:
        return svg.empty(f"No handoff waiting in the live queue was claimed in the last {report.days} days.")
    days = len(report.series)
    highest = max(d.claim_p90_seconds or 0 for d in report.series)
    ticks = svg.tick_values(svg.duration_step(highest), highest)
    top = ticks[-1]
    body = svg.y_axis(ticks, top, duration_text, "Time to claim")
    for values, colour, dash, marker in (
        ([d.claim_p90_seconds for d in report.series], "#D55E00", "6 4", "square"),
        ([d.claim_p50_seconds for d in report.series], "#0072B2", "none", "circle"),
    ):
        body += svg.line(
            [None if v is None else (svg.x_at(i, days), svg.y_at(v, top)) for i, v in enumerate(values)],
            colour,
            dash,
            marker,
        )
    body += svg.x_axis([day_text(d.day) for d in report.series], f"Day ({report.timezone})")
    totals = report.totals
    desc = (
        f"From {period_text(report)}, {totals.claimed} handoffs were claimed: half within "
        f"{duration_text(totals.claim_p50_seconds)}, "
        f"9 in 10 within {duration_text(totals.claim_p90_seconds)}."
    )
    legend = svg.legend(
        [
            ("Median (half were claimed sooner)", svg.key_line("#0072B2", "none", "circle")),
            ("90th percentile (9 in 10 were claimed sooner)", svg.key_line("#D55E00", "6 4", "square")),
        ]
    )
    table = svg.table(
        f"Time to claim per day, {period_text(report)}",
        ["Day", "Claimed", "Median", "90th percentile"],
        [
            [
                day_text(d.day),
                str(d.claimed),
                duration_text(d.claim_p50_seconds),
                duration_text(d.claim_p90_seconds),
            ]
            for d in report.series
        ],
    )
    return format_html("{}{}{}", svg.frame(chart_id, "Time to claim per day", desc, body), legend, table)


def csat_chart(report: HandoffReport, *, chart_id: str = "chart-csat") -> SafeString:
    """Ratings per day (grey bars, left axis) and their average score (blue line, right axis 1 to 5)."""
    totals = report.totals
    if not totals.csat_count:
        return svg.empty(f"No ratings in the last {report.days} days.")
    days = len(report.series)
    most = max(d.csat_count for d in report.series)
    # Four intervals on both axes, so the right axis's 1 to 5 sits on the left axis's grid lines.
    step = svg.count_step(most)
    ticks = [step * i for i in range(5)]
    top = ticks[-1]
    bar = svg.PLOT_W / days * 0.6
    body = svg.y_axis(ticks, top, lambda v: f"{v:g}", "Ratings")
    body += svg.y_axis([0, 1, 2, 3, 4], 4, lambda v: f"{v + 1:g}", "Average score", right=True)
    for i, d in enumerate(report.series):
        if d.csat_count:
            y = svg.y_at(d.csat_count, top)
            body.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="{}" fill="#afb8c1">'
                    "<title>{}: {} ratings</title></rect>",
                    svg.num(svg.x_at(i, days) - bar / 2),
                    svg.num(y),
                    svg.num(bar),
                    svg.num(svg.TOP + svg.PLOT_H - y),
                    day_text(d.day),
                    d.csat_count,
                )
            )
    body += svg.line(
        [
            None if d.csat_average is None else (svg.x_at(i, days), svg.y_at(d.csat_average - 1, 4))
            for i, d in enumerate(report.series)
        ],
        "#0b5fff",
        "none",
        "circle",
    )
    body += svg.x_axis([day_text(d.day) for d in report.series], f"Day ({report.timezone})")
    desc = (
        f"{totals.csat_count} ratings from {period_text(report)}, "
        f"average {average_text(totals.csat_average)} out of 5; "
        f"{percent_text(totals.csat_satisfied)} rated 4 or 5."
    )
    legend = svg.legend(
        [
            ("Ratings that day (left axis)", svg.swatch("#afb8c1")),
            ("Average score, 1 to 5 (right axis)", svg.key_line("#0b5fff", "none", "circle")),
        ]
    )
    table = svg.table(
        f"Customer ratings per day, {period_text(report)}",
        ["Day", "Ratings", "Average score"],
        [[day_text(d.day), str(d.csat_count), average_text(d.csat_average)] for d in report.series],
    )
    return format_html(
        "{}{}{}", svg.frame(chart_id, "Customer satisfaction per day", desc, body), legend, table
    )
