"""The audit chain: appends link up, `audit_verify` finds an edited or removed row, concurrent appends stay
gapless, written rows cannot be saved again, and a refused or failed action writes nothing."""

from __future__ import annotations

import io
import threading
import uuid

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction

from apps.accounts.models import Tenant
from apps.audit.actions import Action
from apps.audit.models import AuditEvent
from apps.audit.trail import GENESIS, audit_record, chain_rows, chain_verify, row_hash
from apps.core.errors import Forbidden
from tests.audit.chain_rows import chain_head

pytestmark = pytest.mark.django_db


def chain(tenant_id: uuid.UUID | None, after: int = 0) -> list[AuditEvent]:
    return list(chain_rows(tenant_id).filter(seq__gt=after).order_by("seq"))


def verify_command(*args: str) -> tuple[int, str, str]:
    """`manage.py audit_verify ARGS`: the status it exits with (a CommandError's `returncode`, which
    `manage.py` passes to `sys.exit`), its stdout, and its stderr with the error's last line."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("audit_verify", *args, stdout=out, stderr=err)
    except CommandError as error:
        return error.returncode, out.getvalue(), f"{err.getvalue()}CommandError: {error}\n"
    return 0, out.getvalue(), err.getvalue()


def test_appends_link_each_row_to_the_one_before(tenant_a):
    tenant = tenant_a.tenant
    base = chain_head(tenant.pk)
    head_hash = AuditEvent.objects.get(tenant=tenant, seq=base).hash if base else GENESIS
    first = audit_record(tenant_id=tenant.pk, action="handoff.claim", actor=tenant_a.agent, target=tenant)
    second = audit_record(
        tenant_id=tenant.pk, action="settings.update", actor=tenant_a.admin, data={"fields": ["name"]}
    )
    third = audit_record(tenant_id=tenant.pk, action="guardrail.abstain", actor_kind="assistant")

    rows = chain(tenant.pk, after=base)
    assert [(r.seq - base, r.action) for r in rows] == [
        (1, "handoff.claim"),
        (2, "settings.update"),
        (3, "guardrail.abstain"),
    ]
    assert [r.prev_hash for r in rows] == [head_hash, first.hash, second.hash]
    assert [r.hash for r in rows] == [row_hash(r) for r in rows] == [first.hash, second.hash, third.hash]
    assert (rows[0].actor_kind, rows[0].actor_id, rows[0].actor_label) == (
        "staff",
        tenant_a.agent.pk,
        "agent_a",
    )
    assert (rows[0].target_type, rows[0].target_id) == ("Tenant", str(tenant.pk))
    assert (rows[2].actor_kind, rows[2].actor_id, rows[2].actor_label) == ("assistant", None, "")
    assert list(chain_verify(tenant_id=tenant.pk)) == []


def test_each_company_and_the_system_have_chains_of_their_own(tenant_a, tenant_b):
    a, b = tenant_a.tenant.pk, tenant_b.tenant.pk
    base_a, base_b, base_system = chain_head(a), chain_head(b), chain_head(None)
    audit_record(tenant_id=a, action="a.one")
    audit_record(tenant_id=b, action="b.one")
    audit_record(tenant_id=None, action="system.one")
    audit_record(tenant_id=a, action="a.two")
    assert [(r.seq - base_a, r.action) for r in chain(a, after=base_a)] == [(1, "a.one"), (2, "a.two")]
    assert [(r.seq - base_b, r.action) for r in chain(b, after=base_b)] == [(1, "b.one")]
    assert [(r.seq - base_system, r.action) for r in chain(None, after=base_system)] == [(1, "system.one")]

    status, out, err = verify_command()
    assert (status, err) == (0, "")
    assert {
        f"chain {a}: {base_a + 2} rows, intact",
        f"chain {b}: {base_b + 1} rows, intact",
        f"chain system: {base_system + 1} rows, intact",
    } <= set(out.splitlines())


def test_an_edited_row_fails_audit_verify_naming_it(tenant_a, tenant_b):
    base = chain_head(tenant_a.tenant.pk)
    for n in range(3):
        audit_record(tenant_id=tenant_a.tenant.pk, action="tool_run.approve", data={"count": n})
    audit_record(tenant_id=tenant_b.tenant.pk, action="tool_run.approve", data={"count": 0})
    rows_b = chain_head(tenant_b.tenant.pk)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditevent SET data = %s::jsonb WHERE tenant_id = %s AND seq = %s",
            ['{"count": 99}', tenant_a.tenant.pk, base + 2],
        )

    status, out, err = verify_command()
    assert status == 1
    assert err.splitlines() == [
        f"chain {tenant_a.tenant.pk}, row {base + 2}: its content was changed after it was written",
        "CommandError: 1 problem(s) found in the audit trail.",
    ]
    assert f"chain {tenant_b.tenant.pk}: {rows_b} rows, intact" in out.splitlines()
    assert str(tenant_a.tenant.pk) not in out

    # One company's chain alone, by slug: the other company's is not read.
    with pytest.raises(CommandError, match="1 problem"):
        call_command("audit_verify", "--tenant", tenant_a.slug, stdout=io.StringIO(), stderr=io.StringIO())
    out_b = io.StringIO()
    call_command("audit_verify", "--tenant", tenant_b.slug, stdout=out_b, stderr=io.StringIO())
    assert out_b.getvalue() == f"chain {tenant_b.tenant.pk}: {rows_b} rows, intact\n"


def test_a_relinked_row_is_found_too(tenant_a):
    """An insider who edits a row and recomputes its hash still breaks the next row's link."""
    base = chain_head(tenant_a.tenant.pk)
    for n in range(3):
        audit_record(tenant_id=tenant_a.tenant.pk, action="note.add", data={"n": n})
    row = AuditEvent.objects.get(tenant=tenant_a.tenant, seq=base + 2)
    row.data = {"n": 42}
    forged = row_hash(row)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditevent SET data = %s::jsonb, hash = %s WHERE id = %s",
            ['{"n": 42}', forged, row.pk],
        )
    assert [str(p) for p in chain_verify(tenant_id=tenant_a.tenant.pk)] == [
        f"chain {tenant_a.tenant.pk}, row {base + 3}: its link does not match the previous row's hash"
    ]


def test_a_removed_middle_row_is_reported_missing(tenant_a):
    tenant_id = tenant_a.tenant.pk
    base = chain_head(tenant_id)
    for n in range(5):
        audit_record(tenant_id=tenant_id, action="reply.send", data={"n": n})
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM audit_auditevent WHERE tenant_id = %s AND seq = %s", [tenant_id, base + 3]
        )

    status, _, err = verify_command("--tenant", tenant_a.slug)
    assert status == 1
    assert err.splitlines() == [
        f"chain {tenant_id}, row {base + 3}: it is missing",
        "CommandError: 1 problem(s) found in the audit trail.",
    ]

    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM audit_auditevent WHERE tenant_id = %s AND seq IN (%s, %s)",
            [tenant_id, base + 1, base + 4],
        )
    assert [str(p) for p in chain_verify(tenant_id=tenant_id)] == [
        f"chain {tenant_id}, row {base + 1}: it is missing",
        f"chain {tenant_id}, row {base + 3}: rows {base + 3}..{base + 4} are missing",
    ]


def test_an_unknown_slug_is_an_error():
    with pytest.raises(CommandError, match="No company has the slug 'nobody'"):
        call_command("audit_verify", "--tenant", "nobody", stdout=io.StringIO(), stderr=io.StringIO())


def test_a_written_row_is_never_saved_again(tenant_a):
    row = audit_record(tenant_id=tenant_a.tenant.pk, action="settings.update", data={"fields": ["name"]})
    row.data = {"fields": ["name", "slug"]}
    with pytest.raises(ValueError, match="append-only"):
        row.save()
    loaded = AuditEvent.objects.get(pk=row.pk)
    with pytest.raises(ValueError, match="append-only"):
        loaded.save(update_fields=["data"])
    assert AuditEvent.objects.get(pk=row.pk).data == {"fields": ["name"]}
    assert list(chain_verify(tenant_id=tenant_a.tenant.pk)) == []


def test_deleting_a_staff_member_leaves_their_rows_intact(tenant_a, make_user):
    leaver = make_user(tenant_a.tenant, roles=["agent"], username="leaver")
    row = audit_record(tenant_id=tenant_a.tenant.pk, action="handoff.claim", actor=leaver)
    leaver_id = leaver.pk
    leaver.delete()
    kept = AuditEvent.objects.get(pk=row.pk)
    assert (kept.actor_id, kept.actor_label) == (leaver_id, "leaver")
    assert list(chain_verify(tenant_id=tenant_a.tenant.pk)) == []


def test_a_rolled_back_append_leaves_no_gap(tenant_a):
    tenant_id = tenant_a.tenant.pk
    base = chain_head(tenant_id)
    audit_record(tenant_id=tenant_id, action="a.kept")

    def change_that_fails() -> None:
        with transaction.atomic():
            audit_record(tenant_id=tenant_id, action="a.rolled_back")
            raise RuntimeError("the change being recorded failed")

    with pytest.raises(RuntimeError):
        change_that_fails()
    audit_record(tenant_id=tenant_id, action="a.after")
    assert [(r.seq - base, r.action) for r in chain(tenant_id, after=base)] == [(1, "a.kept"), (2, "a.after")]
    assert list(chain_verify(tenant_id=tenant_id)) == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_keep_one_gapless_chain(tenant_a):
    """Two threads, each on its own connection, append in their own transactions at the same time; each
    transaction holds a while after appending, so without the chain lock both would read the same head."""
    tenant_id = tenant_a.tenant.pk
    base = chain_head(tenant_id)
    per_thread = 15
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            start.wait(timeout=10)
            for n in range(per_thread):
                with transaction.atomic():
                    audit_record(tenant_id=tenant_id, action=f"{name}.append", data={"n": n})
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT pg_sleep(0.002)")
        except BaseException as exc:  # reported by the test's thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("left", "right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    rows = chain(tenant_id, after=base)
    assert [r.seq - base for r in rows] == list(range(1, 2 * per_thread + 1))
    assert sorted(r.action for r in rows) == ["left.append"] * per_thread + ["right.append"] * per_thread
    # Interleaved, not one thread's rows then the other's: the two really ran at once.
    assert len({r.action for r in rows[:per_thread]}) == 2
    assert list(chain_verify(tenant_id=tenant_id)) == []


# --- actions --------------------------------------------------------------------------------------------


class Rename(Action[Tenant]):
    """A staff write as an action: renames the company."""

    action = "tenant.rename"
    fail_check = False
    fail_perform = False

    def check(self) -> None:
        if self.fail_check:
            raise Forbidden()

    def perform(self) -> Tenant:
        self.tenant.name = self.params["name"]
        self.tenant.save(update_fields=["name", "updated_at"])
        if self.fail_perform:
            raise RuntimeError("the business system refused")
        return self.tenant

    def audit_data(self, result: Tenant) -> dict[str, object]:
        return {"fields": ["name"]}


def test_an_action_writes_its_change_and_its_row_together(tenant_a):
    tenant = tenant_a.tenant
    base = chain_head(tenant.pk)
    result = Rename(tenant=tenant, actor=tenant_a.admin, name="Renamed").execute()
    assert Tenant.objects.get(pk=tenant.pk).name == "Renamed" == result.name
    [row] = chain(tenant.pk, after=base)
    assert (row.action, row.actor_id, row.target_type, row.target_id, row.data) == (
        "tenant.rename",
        tenant_a.admin.pk,
        "Tenant",
        str(tenant.pk),
        {"fields": ["name"]},
    )


@pytest.mark.parametrize("failing", ["fail_check", "fail_perform"])
def test_a_refused_or_failed_action_writes_nothing(tenant_a, failing):
    tenant = tenant_a.tenant
    base = chain_head(tenant.pk)
    before = Tenant.objects.get(pk=tenant.pk)
    action = Rename(tenant=tenant, actor=tenant_a.admin, name="Renamed")
    setattr(action, failing, True)
    with pytest.raises(Forbidden if failing == "fail_check" else RuntimeError):
        action.execute()
    after = Tenant.objects.get(pk=tenant.pk)
    assert (after.name, after.updated_at) == (before.name, before.updated_at)
    assert chain(tenant.pk, after=base) == []
