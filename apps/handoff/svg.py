"""SVG building blocks of the report charts (apps.handoff.charts): a fixed 720 x 280 canvas scaled by the
browser, axes with round ticks, a frame that makes the chart one accessible image, lines broken where a
day has no value, and the visually hidden tables and visible legends that go with each chart. Every text
goes through format_html; numbers are formatted before they are interpolated.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 720, 280
LEFT, RIGHT, TOP, BOTTOM = 76, 56, 16, 44
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
INK, MUTED, GRID = "#1b1f24", "#57606a", "#d0d7de"


def count_step(top: float) -> int:
    """A round step (1, 2, 3, 5, 10, 20, 25, 50...) that covers `top` in at most four intervals."""
    raw = max(top, 1) / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    return max(1, math.ceil(next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)))


DURATION_STEPS = (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def duration_step(top: float) -> int:
    """A round duration in seconds (30 s, 5 min, 1 h...) that covers `top` in about four intervals."""
    raw = max(top, 1) / 4
    return next((s for s in DURATION_STEPS if s >= raw), 86400 * math.ceil(raw / 86400))


def tick_values(step: float, top: float) -> list[float]:
    """0, step, 2 step... up to the first tick at or above `top` (at least one interval)."""
    count = max(1, math.ceil(top / step - 1e-9))
    return [step * i for i in range(count + 1)]


def num(value: float) -> str:
    """A coordinate: one decimal is finer than a pixel."""
    return f"{value:.1f}"


def x_at(index: int, days: int) -> float:
    return LEFT + PLOT_W * (index + 0.5) / days


def y_at(value: float, top: float) -> float:
    return TOP + PLOT_H - PLOT_H * (value / top if top else 0)


def label_every(days: int) -> int:
    return max(1, math.ceil(days / 10))


def frame(
    chart_id: str,
    title: str,
    desc: str,
    body: Sequence[SafeString],
    *,
    defs: str = "",
) -> SafeString:
    return format_html(
        '<svg class="report-chart" id="{id}" viewBox="0 0 {w} {h}" width="100%" role="img" focusable="false" '
        'aria-labelledby="{id}-title {id}-desc" preserveAspectRatio="xMidYMid meet">'
        '<title id="{id}-title">{title}</title><desc id="{id}-desc">{desc}</desc>{defs}{body}</svg>',
        id=chart_id,
        w=WIDTH,
        h=HEIGHT,
        title=title,
        desc=desc,
        defs=defs,
        body=mark_safe("".join(body)),  # noqa: S308 - every part was built by format_html
    )


def y_axis(
    ticks: Sequence[float], top: float, fmt: Callable[[float], str], label: str, *, right: bool = False
) -> list[SafeString]:
    x = LEFT + PLOT_W if right else LEFT
    anchor, dx = ("start", 6) if right else ("end", -6)
    parts = []
    for tick in ticks:
        y = y_at(tick, top)
        if not right:
            parts.append(
                format_html(
                    '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="{}" stroke-width="1"/>',
                    LEFT,
                    LEFT + PLOT_W,
                    num(y),
                    num(y),
                    GRID,
                )
            )
        parts.append(
            format_html(
                '<text x="{}" y="{}" text-anchor="{}" dominant-baseline="middle" font-size="12" '
                'fill="{}">{}</text>',
                x + dx,
                num(y),
                anchor,
                MUTED,
                fmt(tick),
            )
        )
    ax = WIDTH - 14 if right else 14
    parts.append(
        format_html(
            '<text x="{x}" y="{y}" text-anchor="middle" font-size="12" fill="{c}" '
            'transform="rotate({r} {x} {y})">{label}</text>',
            x=ax,
            y=TOP + PLOT_H / 2,
            c=INK,
            r=90 if right else -90,
            label=label,
        )
    )
    return parts


def x_axis(labels: Sequence[str], caption: str) -> list[SafeString]:
    """The baseline, about ten day labels (counted back from the last day, which always has one) and the
    axis caption."""
    days, every = len(labels), label_every(len(labels))
    base = TOP + PLOT_H
    parts = [
        format_html(
            '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="{}" stroke-width="1"/>',
            LEFT,
            LEFT + PLOT_W,
            base,
            base,
            MUTED,
        )
    ]
    for i, label in enumerate(labels):
        if (days - 1 - i) % every:
            continue
        parts.append(
            format_html(
                '<text x="{}" y="{}" text-anchor="middle" font-size="12" fill="{}">{}</text>',
                num(x_at(i, days)),
                base + 16,
                MUTED,
                label,
            )
        )
    parts.append(
        format_html(
            '<text x="{}" y="{}" text-anchor="middle" font-size="12" fill="{}">{}</text>',
            LEFT + PLOT_W / 2,
            HEIGHT - 6,
            INK,
            caption,
        )
    )
    return parts


def table(caption: str, head: Sequence[str], rows: Sequence[Sequence[str]]) -> SafeString:
    header = format_html_join("", '<th scope="col">{}</th>', ((h,) for h in head))
    body = format_html_join(
        "",
        '<tr><th scope="row">{}</th>{}</tr>',
        ((row[0], format_html_join("", "<td>{}</td>", ((cell,) for cell in row[1:]))) for row in rows),
    )
    return format_html(
        '<table class="visually-hidden"><caption>{}</caption><thead><tr>{}</tr></thead>'
        "<tbody>{}</tbody></table>",
        caption,
        header,
        body,
    )


def empty(text: str) -> SafeString:
    return format_html('<p class="report-empty">{}</p>', text)


def legend(items: Sequence[tuple[str, SafeString]]) -> SafeString:
    """A visible key; the swatches repeat the chart's fills (its patterns are referenced by id)."""
    return format_html(
        '<ul class="report-legend">{}</ul>',
        format_html_join("", "<li>{}{}</li>", ((swatch, label) for label, swatch in items)),
    )


def swatch(fill: str) -> SafeString:
    return format_html(
        '<svg class="report-swatch" viewBox="0 0 16 16" width="16" height="16" aria-hidden="true" '
        'focusable="false"><rect width="16" height="16" fill="{}" stroke="{}" stroke-width="1"/></svg>',
        fill,
        INK,
    )


def line(
    points: Sequence[tuple[float, float] | None], colour: str, dash: str, marker: str
) -> list[SafeString]:
    """A line through the points, broken where a day has no value, with a marker on each point."""
    parts: list[SafeString] = []
    runs: list[list[tuple[float, float]]] = [[]]
    for point in points:
        if point is None:
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append(point)
    for run in runs:
        if len(run) > 1:
            path = " ".join(f"{'M' if k == 0 else 'L'}{x:.1f},{y:.1f}" for k, (x, y) in enumerate(run))
            parts.append(
                format_html(
                    '<path d="{}" fill="none" stroke="{}" stroke-width="2" stroke-dasharray="{}"/>',
                    path,
                    colour,
                    dash,
                )
            )
    for point in points:
        if point is None:
            continue
        x, y = point
        if marker == "square":
            parts.append(
                format_html(
                    '<rect x="{}" y="{}" width="7" height="7" fill="{}"/>', num(x - 3.5), num(y - 3.5), colour
                )
            )
        else:
            parts.append(format_html('<circle cx="{}" cy="{}" r="3.5" fill="{}"/>', num(x), num(y), colour))
    return parts


def key_line(colour: str, dash: str, marker: str) -> SafeString:
    shape = (
        format_html('<rect x="9" y="5" width="6" height="6" fill="{}"/>', colour)
        if marker == "square"
        else format_html('<circle cx="12" cy="8" r="3" fill="{}"/>', colour)
    )
    return format_html(
        '<svg class="report-swatch" viewBox="0 0 24 16" width="24" height="16" aria-hidden="true" '
        'focusable="false"><path d="M0,8 H24" stroke="{}" stroke-width="2" stroke-dasharray="{}"/>{}</svg>',
        colour,
        dash,
        shape,
    )
