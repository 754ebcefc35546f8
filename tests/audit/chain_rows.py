"""A long, valid audit chain written in one bulk insert, for tests that need thousands of rows: appending
them one by one through `audit_record` (a lock and a head read each) would take most of the test."""

from __future__ import annotations

import datetime
import uuid

from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.trail import GENESIS, chain_rows, row_hash


def chain_bulk_append(
    tenant_id: uuid.UUID | None,
    count: int,
    *,
    action: str = "test.bulk",
    start: datetime.datetime | None = None,
) -> list[AuditEvent]:
    """`count` rows after the chain's current head, one second apart from `start`, hashed and linked as
    `audit_record` would write them."""
    head = chain_rows(tenant_id).order_by("-seq").values_list("seq", "hash").first()
    seq, prev = head if head else (0, GENESIS)
    at = start or timezone.now()
    rows = []
    for n in range(1, count + 1):
        row = AuditEvent(
            tenant_id=tenant_id,
            seq=seq + n,
            at=at + datetime.timedelta(seconds=n),
            actor_kind=AuditEvent.ActorKind.SYSTEM,
            action=action,
            target_type="Conversation",
            target_id=str(uuid.uuid4()),
            data={"n": seq + n},
            prev_hash=prev,
        )
        row.hash = prev = row_hash(row)
        rows.append(row)
    return AuditEvent.objects.bulk_create(rows, batch_size=1000)


def chain_head(tenant_id: uuid.UUID | None) -> int:
    """The chain's last position: fixtures' own audited writes (role grants) come before a test's."""
    return chain_rows(tenant_id).order_by("-seq").values_list("seq", flat=True).first() or 0
