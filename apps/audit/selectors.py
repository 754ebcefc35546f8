"""Reading the audit trail: one company's rows filtered, a page of them, their export, and a chain check.

Callers (the accounts app's page and API) have already checked that the person is an admin of the
company; everything here is scoped by the `tenant_id` they pass, never by a global.

The export never holds the trail in memory: it reads it in keyset batches (`seq > last ORDER BY seq
LIMIT n`), each a short query of its own. A server-side cursor (`.iterator(chunk_size=...)`) would do
the same in one query, but outside a transaction PostgreSQL copies a `WITH HOLD` cursor's whole result
on the server and keeps it until the cursor is closed, for as long as a slow download lasts; separate
keyset queries hold nothing between batches. The export stops at the chain's head as it was when it
started, so a download is one consistent prefix of the chain even while rows are appended.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from django.db.models import QuerySet

from apps.audit.models import AuditEvent
from apps.audit.trail import ChainProblem, chain_rows, chain_verify

EXPORT_BATCH = 1000
PAGE_SIZE = 50
# Problems listed on the page; the count covers them all.
PROBLEMS_SHOWN = 50
ExportFormat = Literal["csv", "jsonl"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("csv", "jsonl")
EXPORT_CONTENT_TYPES: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/jsonl; charset=utf-8",
}
# Every column of a row, in the order of the CSV header and of each JSON object's keys: with the hashes,
# an exported file can be checked against the chain later.
EXPORT_COLUMNS = (
    "seq",
    "at",
    "actor_kind",
    "actor_id",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "data",
    "trace_id",
    "prev_hash",
    "hash",
)
# A cell starting with one of these is a formula to a spreadsheet (CSV injection): it is prefixed with '.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def audit_events(
    *,
    tenant_id: uuid.UUID | None,
    action: str | None = None,
    actor_kind: str | None = None,
    actor_id: int | None = None,
    actor_label: str | None = None,
    target_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    """One company's rows, newest first; each filter that is given narrows them (`until` is exclusive)."""
    rows = chain_rows(tenant_id)
    if action:
        rows = rows.filter(action=action)
    if actor_kind:
        rows = rows.filter(actor_kind=actor_kind)
    if actor_id is not None:
        rows = rows.filter(actor_id=actor_id)
    if actor_label:
        rows = rows.filter(actor_label__iexact=actor_label)
    if target_id:
        rows = rows.filter(target_id=target_id)
    if since is not None:
        rows = rows.filter(at__gte=since)
    if until is not None:
        rows = rows.filter(at__lt=until)
    return rows.order_by("-seq")


def audit_actions(*, tenant_id: uuid.UUID | None) -> list[str]:
    """The actions that occur in a company's trail, for the filter's choices."""
    rows = chain_rows(tenant_id).order_by("action")
    return list(rows.values_list("action", flat=True).distinct())


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditEvent]
    # Keyset positions for the links: rows older than `older_than`, newer than `newer_than` (None: none).
    older_than: int | None
    newer_than: int | None


def audit_page(
    rows: QuerySet[AuditEvent], *, before: int | None = None, after: int | None = None, size: int = PAGE_SIZE
) -> AuditPage:
    """A page of `rows` (newest first) by chain position, so a page costs the same on a long trail:
    the newest `size`, or the `size` just older than `before`, or the `size` just newer than `after`."""
    if after is not None:
        # Oldest first to take the `size` rows just above `after`, then shown newest first.
        found = list(rows.filter(seq__gt=after).order_by("seq")[: size + 1])
        page = list(reversed(found[:size]))
        more_newer = len(found) > size
        more_older = rows.filter(seq__lte=after).exists()
    else:
        found = list((rows if before is None else rows.filter(seq__lt=before)).order_by("-seq")[: size + 1])
        page = found[:size]
        more_older = len(found) > size
        more_newer = before is not None and rows.filter(seq__gte=before).exists()
    return AuditPage(
        rows=page,
        older_than=page[-1].seq if page and more_older else None,
        newer_than=page[0].seq if page and more_newer else None,
    )


def audit_export_lines(rows: QuerySet[AuditEvent], *, fmt: ExportFormat = "csv") -> Iterator[str]:
    """The rows of `rows` (its filters; chain order, oldest first) as CSV lines with a header, or as JSON
    lines, read `EXPORT_BATCH` rows at a time."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    if fmt == "csv":
        yield _csv_line(EXPORT_COLUMNS)
    head = rows.order_by("-seq").values_list("seq", flat=True).first()
    if head is None:
        return
    last = 0
    batch_rows = rows.filter(seq__lte=head).order_by("seq")
    while True:
        batch = list(batch_rows.filter(seq__gt=last).values_list(*EXPORT_COLUMNS)[:EXPORT_BATCH])
        if not batch:
            return
        for values in batch:
            row = dict(zip(EXPORT_COLUMNS, values, strict=True))
            yield _csv_line(_csv_cells(row)) if fmt == "csv" else _json_line(row)
        last = batch[-1][0]
        if len(batch) < EXPORT_BATCH:
            return


def _csv_cells(row: dict[str, Any]) -> list[str]:
    cells = []
    for name in EXPORT_COLUMNS:
        value = row[name]
        if name == "data":
            text = json.dumps(value, sort_keys=True, ensure_ascii=False)
        elif isinstance(value, datetime):
            text = value.isoformat(timespec="microseconds")
        else:
            text = "" if value is None else str(value)
        cells.append("'" + text if text.startswith(_FORMULA_STARTS) else text)
    return cells


def _csv_line(cells: tuple[str, ...] | list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(cells)
    return out.getvalue()


def _json_line(row: dict[str, Any]) -> str:
    out = {
        k: (v.isoformat(timespec="microseconds") if isinstance(v, datetime) else v) for k, v in row.items()
    }
    return json.dumps(out, ensure_ascii=False, separators=(",", ":")) + "\n"


@dataclass(frozen=True)
class ChainCheck:
    rows: int
    problem_count: int
    problems: list[ChainProblem] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return self.problem_count == 0


def audit_chain_check(*, tenant_id: uuid.UUID | None) -> ChainCheck:
    """Recompute a company's whole chain (as `manage.py audit_verify` does): its size and problems."""
    problems: list[ChainProblem] = []
    count = 0
    for problem in chain_verify(tenant_id=tenant_id):
        count += 1
        if len(problems) < PROBLEMS_SHOWN:
            problems.append(problem)
    rows = chain_rows(tenant_id).count()
    return ChainCheck(rows=rows, problem_count=count, problems=problems)
