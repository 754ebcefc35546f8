"""Exporting the audit trail: CSV and JSON lines that stream in batches (never the whole trail in memory),
over the plain handler and under ASGI (where Django would buffer a sync iterator whole)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test import AsyncClient
from django.test.utils import CaptureQueriesContext

from apps.audit import selectors
from apps.audit.models import AuditEvent
from apps.audit.selectors import EXPORT_COLUMNS, audit_events, audit_export_lines
from apps.audit.trail import audit_record, row_hash
from tests.audit.chain_rows import chain_bulk_append, chain_head

ROWS = 5_000


def url(slug: str, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"/staff/{slug}/audit/?{query}"


@pytest.mark.django_db
def test_csv_export_of_5000_rows_streams_in_batches(tenant_a, client_admin_a):
    h = chain_head(tenant_a.tenant.pk)  # the fixtures' own rows (role grants) are not exported: filtered
    chain_bulk_append(tenant_a.tenant.pk, ROWS, action="test.bulk")
    response = client_admin_a.get(url(tenant_a.slug, format="csv", action="test.bulk"))
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith(f'attachment; filename="audit-{tenant_a.slug}-')
    assert response["Content-Disposition"].endswith('.csv"')

    body = iter(response.streaming_content)
    with CaptureQueriesContext(connection) as queries:
        header = next(body)
        assert len(queries) == 0  # the header goes out before anything is read
        next(body)
        # The first row needed the chain's head and one batch, not the trail.
        assert len(queries) == 2
        rest = b"".join(body)
    batches = [q["sql"] for q in queries.captured_queries[1:]]
    assert len(batches) == ROWS // selectors.EXPORT_BATCH + 1  # the last one finds nothing more
    assert all(f"LIMIT {selectors.EXPORT_BATCH}" in sql for sql in batches)

    rows = list(csv.reader(io.StringIO((header + rest).decode())))
    assert rows[0] == list(EXPORT_COLUMNS)
    assert len(rows) == ROWS  # the header, and every row but the one read above
    assert [int(r[0]) - h for r in rows[1:3]] == [2, 3]
    assert int(rows[-1][0]) - h == ROWS


@pytest.mark.django_db
def test_jsonl_export_holds_every_column_and_verifiable_hashes(tenant_a, client_admin_a):
    h = chain_head(tenant_a.tenant.pk)
    audit_record(tenant_id=tenant_a.tenant.pk, action="handoff.claim", actor=tenant_a.agent, data={"n": 1})
    audit_record(tenant_id=tenant_a.tenant.pk, action="settings.update", actor=tenant_a.admin)
    response = client_admin_a.get(url(tenant_a.slug, format="jsonl"))
    assert response["Content-Type"] == "application/jsonl; charset=utf-8"
    assert response["Content-Disposition"].endswith('.jsonl"')
    lines = b"".join(response.streaming_content).decode().splitlines()
    objects = [json.loads(line) for line in lines]
    assert [o["seq"] for o in objects] == list(range(1, h + 3))  # oldest first, the whole chain
    assert {tuple(o) for o in objects} == {EXPORT_COLUMNS}
    assert [(o["seq"] - h, o["action"], o["actor_label"], o["data"]) for o in objects[-2:]] == [
        (1, "handoff.claim", "agent_a", {"n": 1}),
        (2, "settings.update", "admin_a", {}),
    ]
    stored = {row.seq: row for row in AuditEvent.objects.filter(tenant=tenant_a.tenant)}
    assert [o["hash"] for o in objects] == [row_hash(stored[o["seq"]]) for o in objects]
    assert [o["prev_hash"] for o in objects[1:]] == [o["hash"] for o in objects[:-1]]


@pytest.mark.django_db
def test_export_applies_the_filters_and_only_the_companys_rows(tenant_a, tenant_b, client_admin_a):
    h = chain_head(tenant_a.tenant.pk)
    audit_record(tenant_id=tenant_a.tenant.pk, action="handoff.claim", actor=tenant_a.agent)
    audit_record(tenant_id=tenant_a.tenant.pk, action="settings.update", actor=tenant_a.admin)
    audit_record(tenant_id=tenant_a.tenant.pk, action="handoff.claim", actor=tenant_a.admin)
    audit_record(tenant_id=tenant_b.tenant.pk, action="handoff.claim", actor=tenant_b.agent)
    body = b"".join(
        client_admin_a.get(url(tenant_a.slug, format="csv", action="handoff.claim")).streaming_content
    )
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert [(int(r["seq"]) - h, r["actor_label"]) for r in rows] == [(1, "agent_a"), (3, "admin_a")]


@pytest.mark.django_db
def test_csv_cells_that_a_spreadsheet_would_run_are_defused(tenant_a):
    audit_record(
        tenant_id=tenant_a.tenant.pk, action="note.add", target_type="Note", target_id="=HYPERLINK(1)"
    )
    lines = list(audit_export_lines(audit_events(tenant_id=tenant_a.tenant.pk, action="note.add"), fmt="csv"))
    row = next(csv.DictReader(io.StringIO("".join(lines))))
    assert row["target_id"] == "'=HYPERLINK(1)"


@pytest.mark.django_db
def test_an_export_is_the_chain_as_it_was_when_it_started(tenant_a):
    h = chain_head(tenant_a.tenant.pk)
    chain_bulk_append(tenant_a.tenant.pk, 3)
    lines = audit_export_lines(audit_events(tenant_id=tenant_a.tenant.pk), fmt="jsonl")
    first = json.loads(next(lines))
    audit_record(tenant_id=tenant_a.tenant.pk, action="late.append")
    assert [first["seq"], *(json.loads(line)["seq"] for line in lines)] == list(range(1, h + 4))


@pytest.mark.django_db
def test_an_unknown_format_is_refused(tenant_a, client_admin_a):
    response = client_admin_a.get(url(tenant_a.slug, format="xlsx"))
    assert response.status_code == 400
    assert b"format is one of csv, jsonl." in response.content


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["agent", "editor"])
def test_only_admins_export(tenant_a, client_as: Callable, who):
    chain_bulk_append(tenant_a.tenant.pk, 2)
    response = client_as(getattr(tenant_a, who)).get(url(tenant_a.slug, format="csv"))
    assert response.status_code == 403
    assert not response.streaming


@pytest.mark.django_db(transaction=True)
def test_under_asgi_the_export_is_an_async_stream_of_bounded_chunks(tenant_a):
    h = chain_head(tenant_a.tenant.pk)
    chain_bulk_append(tenant_a.tenant.pk, ROWS, action="test.bulk")
    client = AsyncClient()
    client.force_login(tenant_a.admin)

    async def download() -> tuple[Any, list[bytes]]:
        response = await client.get(url(tenant_a.slug, format="jsonl", action="test.bulk"))
        return response, [chunk async for chunk in response.streaming_content]  # type: ignore[attr-defined]

    response, chunks = async_to_sync(download)()
    assert response.status_code == 200
    assert response.is_async
    assert len(chunks) == ROWS // 500
    assert {chunk.count(b"\n") for chunk in chunks} == {500}
    seqs = [json.loads(line)["seq"] for line in b"".join(chunks).splitlines()]
    assert seqs == list(range(h + 1, h + ROWS + 1))
