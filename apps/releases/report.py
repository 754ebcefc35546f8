"""The answers table: the same columns for a golden run (`manage.py golden_run`, GoldenRun.summary) as
bench/answers.py prints, written once here. Pure Python: the benchmark imports it before its stack."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

LEGEND = (
    "right: answerable and right / answerable; abstained: rightly abstained / unanswerable; wrongly:\n"
    "answerable but abstained; unsupported: composed sentences shown with a number the evidence lacks;\n"
    "composed: composed sentences shown; dropped: refused by the support check; times in ms from send"
)
HEADER = (
    f"{'style':<9}{'set':<12}{'right':>9}{'abstained':>11}{'wrongly':>9}{'unsupported':>13}"
    f"{'composed':>10}{'dropped':>9}{'first p50':>11}{'p95':>8}{'complete p50':>14}{'p95':>8}"
    f"{'failed':>8}"
)


def _cell(value: Any, width: int) -> str:
    return f"{'-' if value is None else value!s:>{width}}"


def table_row(style: str, name: str, row: dict[str, Any]) -> str:
    """One line: `row` holds right, answerable, abstained_right, unanswerable, wrongly_abstained,
    unsupported_shown, composed_shown, dropped, first_content_ms and complete_ms ({"p50", "p95"}), failed."""
    return (
        f"{style:<9}{name:<12}{row['right']:>4}/{row['answerable']:<4}"
        f"{row['abstained_right']:>6}/{row['unanswerable']:<4}{row['wrongly_abstained']:>9}"
        f"{row['unsupported_shown']:>13}{row['composed_shown']:>10}{row['dropped']:>9}"
        f"{_cell(row['first_content_ms']['p50'], 11)}{_cell(row['first_content_ms']['p95'], 8)}"
        f"{_cell(row['complete_ms']['p50'], 14)}{_cell(row['complete_ms']['p95'], 8)}"
        f"{row['failed']:>8}"
    )


def table_lines(rows: Iterable[tuple[str, str, dict[str, Any]]]) -> list[str]:
    """The legend, a blank line, the header and one line per (style, set name, row)."""
    return [*LEGEND.split("\n"), "", HEADER, *(table_row(style, name, row) for style, name, row in rows)]


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..1) of a non-empty list (bench/stats.py's `pct` too)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def p50_p95(values: Sequence[float], *, digits: int = 1) -> dict[str, Any]:
    if not values:
        return {"p50": None, "p95": None, "n": 0}
    return {
        "p50": round(percentile(values, 0.5), digits),
        "p95": round(percentile(values, 0.95), digits),
        "n": len(values),
    }
