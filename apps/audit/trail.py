"""Writing and verifying the audit trail (apps.audit.models.AuditEvent).

`audit_record` is called inside the transaction of the change it records, so the row commits or rolls
back with it. It takes the company's chain lock (a transaction-scoped advisory lock, the last lock of the
desk's order in docs/architecture/locking.md), reads the chain's head and appends. `chain_verify`
recomputes every hash and link of a chain.

What goes into `data` is cleaned by `audit_data_clean`: values under secret-looking keys are replaced,
strings go through the PII redactor the guardrails app registers (`audit_redactor_register`), and long
strings are cut. Callers still pass counts, ids and reasons rather than customers' words.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.audit.models import AuditEvent

GENESIS = "0" * 64
TEXT_MAX = 300
WITHHELD = "[text withheld]"
SECRET_KEY_RE = re.compile(r"(secret|password|passwd|token|api_?key|credential|private|signature)", re.I)
# Strings that are identifiers, not prose: ids, slugs, action names, ISO times, enum values.
_PLAIN_RE = re.compile(r"^[A-Za-z0-9_.:/+-]{0,80}$")
_UUID_RE = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$", re.I)

_redactor: Callable[[str], str] | None = None


def audit_redactor_register(redact: Callable[[str], str]) -> None:
    """The guardrails app registers its PII redactor at start (AppConfig.ready)."""
    global _redactor
    _redactor = redact


def _clean_text(value: str) -> str:
    text = value if len(value) <= TEXT_MAX else value[: TEXT_MAX - 1] + "…"
    if _UUID_RE.match(text):
        return text  # an id, however many digits it happens to hold in a row
    if _PLAIN_RE.match(text) and "@" not in text and not re.search(r"\d{5,}", text):
        return text
    if _redactor is None:
        # No redactor (a process that never loaded guardrails): keep nothing that could name someone.
        return WITHHELD
    try:
        return str(_redactor(text))
    except Exception:
        # The redactor fails closed (PII analyzer unavailable): the action being recorded still goes
        # through, and its row keeps nothing it could not check.
        return WITHHELD


def audit_data_clean(data: Any, *, key: str = "") -> Any:
    """`data` as it may be stored: JSON values only, secrets replaced, prose redacted and cut."""
    if key and SECRET_KEY_RE.search(key) and data not in (None, "", [], {}):
        return "[secret]"
    if isinstance(data, dict):
        return {str(k): audit_data_clean(v, key=str(k)) for k, v in data.items()}
    if isinstance(data, list | tuple | set):
        return [audit_data_clean(v, key=key) for v in data]
    if isinstance(data, bool | int | float) or data is None:
        return data
    if isinstance(data, uuid.UUID):
        return str(data)
    if isinstance(data, datetime):
        return data.isoformat()
    return _clean_text(str(data))


def _canonical(row: AuditEvent) -> bytes:
    values: dict[str, Any] = {}
    for name in AuditEvent.HASHED:
        value = getattr(row, name)
        if isinstance(value, datetime):
            value = value.isoformat(timespec="microseconds")
        elif isinstance(value, uuid.UUID):
            value = str(value)
        values[name] = value
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def row_hash(row: AuditEvent) -> str:
    return hashlib.sha256(_canonical(row)).hexdigest()


def chain_rows(tenant_id: uuid.UUID | None) -> QuerySet[AuditEvent]:
    """One chain's rows: a company's, or (None) the installation's own, unordered."""
    if tenant_id is None:
        return AuditEvent.objects.filter(tenant__isnull=True)
    return AuditEvent.objects.filter(tenant_id=tenant_id)


def _chain_lock(tenant_id: uuid.UUID | None) -> None:
    """Serialises appends to one chain until commit. Taken last, after every row lock of the transaction."""
    key = f"audit-chain:{tenant_id or 'system'}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [key])


def _current_trace_id() -> str:
    try:
        from opentelemetry import trace
    except ImportError:  # pragma: no cover - the SDK is a dependency
        return ""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""


def audit_record(
    *,
    tenant_id: uuid.UUID | None,
    action: str,
    actor: Any = None,
    actor_kind: str | None = None,
    target: Any = None,
    target_type: str = "",
    target_id: str | uuid.UUID = "",
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one row to the company's chain, in the caller's transaction (opened here if there is none).

    `actor` is a staff user (or None); `actor_kind` defaults to staff with a user and system without.
    `target` is a model instance (its class name and id are recorded) or use `target_type`/`target_id`.
    """
    if target is not None:
        target_type = target_type or type(target).__name__
        target_id = target_id or str(getattr(target, "pk", "") or "")
    kind = actor_kind or (AuditEvent.ActorKind.STAFF if actor is not None else AuditEvent.ActorKind.SYSTEM)
    with transaction.atomic():
        _chain_lock(tenant_id)
        head = chain_rows(tenant_id).order_by("-seq").values_list("seq", "hash").first()
        seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
        row = AuditEvent(
            tenant_id=tenant_id,
            seq=seq,
            at=timezone.now(),
            actor_kind=kind,
            actor=actor if actor is not None and getattr(actor, "pk", None) else None,
            actor_label=str(getattr(actor, "username", "") or "")[:150],
            action=action,
            target_type=str(target_type)[:64],
            target_id=str(target_id)[:64],
            data=audit_data_clean(data or {}),
            trace_id=_current_trace_id(),
            prev_hash=prev,
        )
        row.hash = row_hash(row)
        row.save(force_insert=True)
    return row


@dataclass(frozen=True)
class ChainProblem:
    tenant_id: uuid.UUID | None
    seq: int
    problem: str

    def __str__(self) -> str:
        return f"chain {self.tenant_id or 'system'}, row {self.seq}: {self.problem}"


def chain_verify(*, tenant_id: uuid.UUID | None, batch: int = 2000) -> Iterator[ChainProblem]:
    """Every problem of one chain: a row whose content no longer matches its hash (edited), a row whose
    link does not match the previous row's hash, or a missing position (removed)."""
    expected_seq, prev = 1, GENESIS
    rows = chain_rows(tenant_id).order_by("seq")
    for row in rows.iterator(chunk_size=batch):
        if row.seq != expected_seq:
            missing = (
                "it is missing"
                if row.seq - 1 == expected_seq
                else f"rows {expected_seq}..{row.seq - 1} are missing"
            )
            yield ChainProblem(tenant_id, expected_seq, missing)
        elif row.prev_hash != prev:
            # After a gap the link cannot match: the missing row is the problem, reported once.
            yield ChainProblem(tenant_id, row.seq, "its link does not match the previous row's hash")
        if row_hash(row) != row.hash:
            yield ChainProblem(tenant_id, row.seq, "its content was changed after it was written")
        expected_seq, prev = row.seq + 1, row.hash


def chain_tenants() -> list[uuid.UUID | None]:
    return list(AuditEvent.objects.order_by().values_list("tenant_id", flat=True).distinct())
