"""The golden page's chart: the pass rate of each run over time, server-rendered SVG built from the
report charts' blocks (apps/handoff/svg.py), with a visually hidden table of every run for screen
readers. Every text goes through format_html."""

from __future__ import annotations

from collections.abc import Sequence

from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from apps.handoff import svg
from apps.releases.models import GoldenRun

COLOUR = "#0072B2"


def percent_text(share: float | None) -> str:
    return "—" if share is None else f"{round(share * 100)}%"


def run_when(run: GoldenRun) -> str:
    at = timezone.localtime(run.finished_at or run.created_at)
    return f"{at.day} {at:%b} {at:%H:%M}"


def run_day(run: GoldenRun) -> str:
    at = timezone.localtime(run.finished_at or run.created_at)
    return f"{at.day} {at:%b}"


def duration_text(ms: float | None) -> str:
    if ms is None:
        return "—"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


def pass_rate_chart(runs: Sequence[GoldenRun], *, chart_id: str = "chart-golden") -> SafeString:
    """`runs`: finished runs, oldest first (golden_reads.golden_runs_charted)."""
    if not runs:
        return svg.empty("No finished run yet: run the golden set to see its pass rate here.")
    count = len(runs)
    ticks = [0.0, 25.0, 50.0, 75.0, 100.0]
    body = svg.y_axis(ticks, 100, lambda v: f"{v:g}%", "Pass rate")
    body += svg.line(
        [(svg.x_at(i, count), svg.y_at((r.pass_rate or 0) * 100, 100)) for i, r in enumerate(runs)],
        COLOUR,
        "none",
        "circle",
    )
    body += svg.x_axis([run_day(r) for r in runs], "Run, oldest to newest")
    last = runs[-1]
    lowest = min(runs, key=lambda r: r.pass_rate or 0)
    desc = (
        f"{count} run{'s' if count != 1 else ''} from {run_when(runs[0])} to {run_when(last)}. "
        f"The newest passed {last.passed} of {last.total} questions ({percent_text(last.pass_rate)}); "
        f"the lowest was {percent_text(lowest.pass_rate)} on {run_when(lowest)}."
    )
    table = svg.table(
        "Pass rate of each golden run, oldest first",
        ["Finished", "Kind", "Model", "Passed", "Pass rate"],
        [
            [
                run_when(r),
                r.get_kind_display(),
                r.model_label or "The company's current model",
                f"{r.passed} of {r.total}",
                percent_text(r.pass_rate),
            ]
            for r in runs
        ],
    )
    return format_html("{}{}", svg.frame(chart_id, "Golden answers: pass rate per run", desc, body), table)
