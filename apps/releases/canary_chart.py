"""The canary's small chart: each guardrail rate and the handoff rate of both arms as paired horizontal
bars (0-100 %), one accessible image with a visually hidden table (apps.handoff.svg's conventions)."""

from __future__ import annotations

from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from apps.handoff import svg

WIDTH, ROW, LABEL, BAR_H = 560, 40, 220, 14
CURRENT, CANDIDATE = "#57606a", "#0969da"


def indicator_chart(chart_id: str, bars: list[dict[str, Any]]) -> SafeString:
    """`bars` as canary_selectors.indicator_bars returns them; an em dash where an arm has no value yet."""
    if not bars:
        return svg.empty("No indicators yet.")
    plot = WIDTH - LABEL - 60
    height = ROW * len(bars) + 8
    parts = []
    for n, bar in enumerate(bars):
        top = 4 + n * ROW
        parts.append(
            format_html(
                '<text x="{}" y="{}" font-size="12" fill="{}" text-anchor="end">{}</text>',
                LABEL - 8,
                svg.num(top + BAR_H + 2),
                svg.INK,
                bar["label"],
            )
        )
        for k, (arm, colour) in enumerate((("current", CURRENT), ("candidate", CANDIDATE))):
            value = bar.get(arm)
            y = top + k * (BAR_H + 2)
            width = plot * min(100.0, max(0.0, float(value))) / 100 if value is not None else 0.0
            parts.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"/>'
                    '<text x="{}" y="{}" font-size="11" fill="{}">{}</text>',
                    LABEL,
                    svg.num(y),
                    svg.num(width),
                    BAR_H,
                    colour,
                    svg.num(LABEL + width + 4),
                    svg.num(y + BAR_H - 3),
                    svg.MUTED,
                    "\u2013" if value is None else f"{value:g} %",
                )
            )
    desc = "; ".join(
        f"{b['label']}: current {_pct(b.get('current'))}, candidate {_pct(b.get('candidate'))}" for b in bars
    )
    image = format_html(
        '<svg class="report-chart canary-chart" id="{id}" viewBox="0 0 {w} {h}" width="100%" role="img" '
        'focusable="false" aria-labelledby="{id}-title {id}-desc"><title id="{id}-title">{title}</title>'
        '<desc id="{id}-desc">{desc}</desc>{body}</svg>',
        id=chart_id,
        w=WIDTH,
        h=height,
        title="Rates of the current model and the candidate",
        desc=desc,
        body=format_html_join("", "{}", ((p,) for p in parts)),
    )
    hidden = svg.table(
        "Rates of the current model and the candidate, percent of conversations",
        ["Indicator", "Current model", "Candidate"],
        [[b["label"], _pct(b.get("current")), _pct(b.get("candidate"))] for b in bars],
    )
    key = svg.legend([("Current model", svg.swatch(CURRENT)), ("Candidate", svg.swatch(CANDIDATE))])
    return format_html("{}{}{}", image, key, hidden)


def _pct(value: Any) -> str:
    return "no data" if value is None else f"{value:g} %"
