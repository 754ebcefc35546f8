"""The admins' "Audit trail" page: a company's rows filtered and paged, its chain checked, and exports.

Admins only: an agent or editor of the company gets 403, anyone else 404 (`access_tenant`). The filters
are plain GET parameters, so a filtered view is a link that can be shared with another admin; the same
parameters with `format=csv` or `format=jsonl` download exactly the rows shown, every page of them.

Exports stream (apps.audit.selectors explains the batches). This server runs under ASGI, where Django
would read a plain iterator's whole body into a list before sending the first byte; the body is
therefore handed over as an async iterator that pulls a batch of lines at a time on the request's thread.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.accounts.models import Role, Tenant
from apps.accounts.selectors import access_tenant
from apps.audit.models import AuditEvent
from apps.audit.selectors import (
    EXPORT_CONTENT_TYPES,
    EXPORT_FORMATS,
    audit_actions,
    audit_chain_check,
    audit_events,
    audit_export_lines,
    audit_page,
)
from apps.core.errors import BadRequest

ADMINS = [Role.ADMIN]
# Lines per pull of an export's body: one database batch is `EXPORT_BATCH` rows, a few pulls each.
STREAM_LINES = 500
SUMMARY_CHARS = 160


@dataclass(frozen=True)
class AuditFilters:
    """The filters of the page and the API, as `audit_events` takes them."""

    action: str | None = None
    actor_kind: str | None = None
    actor_id: int | None = None
    actor_label: str | None = None
    target_id: str | None = None
    since: datetime.datetime | None = None
    until: datetime.datetime | None = None

    def kwargs(self) -> dict[str, Any]:
        return asdict(self)


def audit_filters_parse(params: Mapping[str, str]) -> AuditFilters:
    """`action`, `actor_kind`, `actor` (a username), `actor_id`, `target`, `since` and `until` (a date:
    whole days in UTC, `until` included; or an ISO 8601 time). Raises BadRequest naming the bad one."""
    kind = params.get("actor_kind", "").strip() or None
    if kind is not None and kind not in AuditEvent.ActorKind.values:
        raise BadRequest(f"actor_kind is one of {', '.join(AuditEvent.ActorKind.values)}.")
    raw_actor_id = params.get("actor_id", "").strip()
    try:
        actor_id = int(raw_actor_id) if raw_actor_id else None
    except ValueError:
        raise BadRequest("actor_id is a whole number.") from None
    since = _moment(params.get("since", ""), "since", end_of_day=False)
    until = _moment(params.get("until", ""), "until", end_of_day=True)
    if since is not None and until is not None and since >= until:
        raise BadRequest("The date range ends before it starts.")
    return AuditFilters(
        action=params.get("action", "").strip()[:64] or None,
        actor_kind=kind,
        actor_id=actor_id,
        actor_label=params.get("actor", "").strip()[:150] or None,
        target_id=(params.get("target_id") or params.get("target") or "").strip()[:64] or None,
        since=since,
        until=until,
    )


def _moment(raw: str, name: str, *, end_of_day: bool) -> datetime.datetime | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        day = parse_date(raw)
        moment = None if day else parse_datetime(raw)
    except ValueError:
        day = moment = None
    if day is not None:
        start = datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC)
        return start + datetime.timedelta(days=1) if end_of_day else start
    if moment is None:
        raise BadRequest(f"{name} is a date (YYYY-MM-DD) or an ISO 8601 time.")
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=datetime.UTC)


def _position(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise BadRequest(f"{name} is a position in the chain (a whole number).")
    return int(raw)


@never_cache
@login_required
@require_GET
def audit_trail(request: HttpRequest, slug: str) -> HttpResponseBase:
    tenant, _ = access_tenant(actor=request.user, slug=slug, roles=ADMINS)
    fmt = request.GET.get("format", "")
    if fmt:
        if fmt not in EXPORT_FORMATS:
            raise BadRequest(f"format is one of {', '.join(EXPORT_FORMATS)}.")
        filters = audit_filters_parse(request.GET)
        return _export(request, tenant, filters, fmt)
    context: dict[str, Any] = {
        "tenant": tenant,
        "actions": audit_actions(tenant_id=tenant.pk),
        "actor_kinds": AuditEvent.ActorKind.choices,
        "values": {
            k: request.GET.get(k, "") for k in ("action", "actor_kind", "actor", "target", "since", "until")
        },
        "rows": [],
        "page": None,
        "error": "",
        "filtered": any(
            request.GET.get(k) for k in ("action", "actor_kind", "actor", "target", "since", "until")
        ),
        "paged": bool(request.GET.get("before") or request.GET.get("after")),
        "check": audit_chain_check(tenant_id=tenant.pk) if request.GET.get("verify") else None,
    }
    try:
        filters = audit_filters_parse(request.GET)
        page = audit_page(
            audit_events(tenant_id=tenant.pk, **filters.kwargs()),
            before=_position(request.GET, "before"),
            after=_position(request.GET, "after"),
        )
    except BadRequest as exc:
        context["error"] = exc.message
        return render(request, "accounts/audit_trail.html", context, status=400)
    context["page"] = page
    context["rows"] = [_row(event) for event in page.rows]
    if page.rows:
        context["first_seq"], context["last_seq"] = page.rows[0].seq, page.rows[-1].seq
    return render(request, "accounts/audit_trail.html", context)


def _row(event: AuditEvent) -> dict[str, Any]:
    kind = AuditEvent.ActorKind(event.actor_kind)
    if kind == AuditEvent.ActorKind.STAFF:
        actor = event.actor_label or "A deleted staff member"
    else:
        actor = kind.label
    return {
        "event": event,
        "actor": actor,
        "target": " ".join(part for part in (event.target_type, event.target_id) if part),
        "summary": audit_data_summary(event.data),
        "short_hash": event.hash[:10],
    }


def audit_data_summary(data: Any) -> str:
    """A row's `data` on one line (`key: value; ...`), cut to fit a table cell; the export has it whole."""
    if not isinstance(data, dict):
        text = _compact(data)
    else:
        text = "; ".join(f"{key}: {_compact(value)}" for key, value in data.items())
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def _compact(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_compact(v) for v in value) if value else "none"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_compact(v)}" for k, v in value.items()) + "}"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _export(request: HttpRequest, tenant: Tenant, filters: AuditFilters, fmt: str) -> StreamingHttpResponse:
    rows = audit_events(tenant_id=tenant.pk, **filters.kwargs())
    lines = audit_export_lines(rows, fmt="csv" if fmt == "csv" else "jsonl")
    body: Iterator[str] | AsyncIterator[str] = _pulled(lines) if isinstance(request, ASGIRequest) else lines
    response = StreamingHttpResponse(body, content_type=EXPORT_CONTENT_TYPES[fmt])
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="audit-{tenant.slug}-{stamp}.{fmt}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _take(lines: Iterator[str], count: int) -> str:
    out = []
    for line in lines:
        out.append(line)
        if len(out) >= count:
            break
    return "".join(out)


async def _pulled(lines: Iterator[str]) -> AsyncIterator[str]:
    """`lines` for an ASGI server, `STREAM_LINES` at a time. Each pull runs on the request's own thread
    (thread-sensitive, as the view did), so the download uses the one connection the request has."""
    take = sync_to_async(_take, thread_sensitive=True)
    while chunk := await take(lines, STREAM_LINES):
        yield chunk
