"""The desk's row locks (apps/{conversations,handoff,tools}/locks.py, docs/architecture/locking.md): taken
nowhere else, each one really held against a concurrent writer, and nested in the documented order from
two transactions at once without a deadlock (real PostgreSQL, one connection per thread)."""

from __future__ import annotations

import ast
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from apps.accounts.models import Tenant, User
from apps.conversations.events import event_append
from apps.conversations.locks import (
    conversation_and_message_lock,
    conversation_lock,
    conversation_lock_existing,
    conversation_lock_find,
    guest_conversation_lock,
    streaming_messages_lock,
)
from apps.conversations.models import Conversation, ConversationEvent, HandoffReason, Message
from apps.core.errors import NotFound
from apps.handoff.locks import handoff_lock, handoff_open_lock, presence_lock, tenant_ticket_number_lock
from apps.handoff.models import Handoff, Presence
from apps.tools.locks import conversation_tool_run_lock, tool_run_lock
from apps.tools.models import RunStatus, ToolRun

ROOT = Path(__file__).resolve().parents[2]
APPS = ROOT / "apps"

# ---- nothing else takes a row lock -------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _marker_events(settings: Any) -> None:
    """The tests below append marker events ("lock.test") only to write to a locked row; they are no
    event type a client sees, so they are not checked against the event models."""
    settings.EVENTS_STRICT = False


LOCK_MODULES = {"apps/conversations/locks.py", "apps/handoff/locks.py", "apps/tools/locks.py"}
# Domains outside the desk's order (the lock modules' docstrings say why), each locking only its own models.
SEPARATE_DOMAINS = {
    "apps/knowledge/": {"Document", "DocumentVersion"},
    "apps/telco/": {"Account"},
    "apps/voice/": {"VoiceClip", "VoiceSettings"},
    "apps/messaging/": {"MessagingChannel"},
    "apps/llm/": {"ModelEndpoint"},
    "apps/releases/": {"GatedChange", "GoldenRun"},
}
# Raw SQL that takes row locks (a SELECT with a locking clause; not prose such as "waiting for update").
ROW_LOCK_SQL = re.compile(
    r"\bselect\b.*\bfor\s+(no\s+key\s+update|update|key\s+share|share)\b", re.IGNORECASE | re.DOTALL
)


def _receiver_root(node: ast.expr) -> str:
    """The name a method chain starts from: `Conversation` in `Conversation.objects.filter().first()`."""
    while True:
        if isinstance(node, ast.Attribute):
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Subscript):
            node = node.value
        elif isinstance(node, ast.Name):
            return node.id
        else:
            return f"<{type(node).__name__}>"


def row_locks(source: str, filename: str) -> list[tuple[int, str]]:
    """(line, what) for every row lock a module takes: `select_for_update` on any receiver (also through
    getattr), and SQL strings passed to a call that lock rows."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Attribute) and node.attr == "select_for_update":
            found.append((node.lineno, _receiver_root(node.value)))
        elif isinstance(node, ast.Call):
            literals = [
                a for a in [*node.args, *(k.value for k in node.keywords)] if isinstance(a, ast.Constant)
            ]
            for arg in literals:
                if arg.value == "select_for_update":
                    found.append((node.lineno, "getattr"))
                elif isinstance(arg.value, str) and ROW_LOCK_SQL.search(arg.value):
                    found.append((node.lineno, "SQL"))
    return found


def violations(source: str, relative: str) -> list[str]:
    if relative in LOCK_MODULES:
        return []
    allowed = next(
        (models for prefix, models in SEPARATE_DOMAINS.items() if relative.startswith(prefix)), set()
    )
    return [
        f"{relative}:{line} locks {root}" for line, root in row_locks(source, relative) if root not in allowed
    ]


def _app_modules() -> Iterator[tuple[str, str]]:
    for path in sorted(APPS.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if "/migrations/" not in relative:
            yield relative, path.read_text(encoding="utf-8")


def test_no_module_but_the_lock_modules_takes_a_row_lock() -> None:
    found = [v for relative, source in _app_modules() for v in violations(source, relative)]
    assert found == []


def test_the_lock_modules_lock_exactly_the_models_of_the_order() -> None:
    locked: dict[str, set[str]] = {}
    for relative in sorted(LOCK_MODULES):
        source = (ROOT / relative).read_text(encoding="utf-8")
        locked[relative] = {root for _, root in row_locks(source, relative)}
    assert locked == {
        "apps/conversations/locks.py": {"Conversation", "Message", "Delivery"},
        "apps/handoff/locks.py": {"Presence", "Handoff", "Tenant"},
        "apps/tools/locks.py": {"ToolRun"},
    }


@pytest.mark.parametrize(
    ("source", "relative", "expected"),
    [
        ("Conversation.objects.select_for_update().get(id=1)", "apps/handoff/x.py", ["Conversation"]),
        (
            "rows = Message.objects.filter(turn=1)\nlocked = list(rows.select_for_update())",
            "apps/conversations/x.py",
            ["rows"],
        ),
        ("Handoff.objects.select_for_update(of=('self',)).first()", "apps/knowledge/x.py", ["Handoff"]),
        ("Account.objects.select_for_update().first()", "apps/conversations/x.py", ["Account"]),
        ("getattr(ToolRun.objects, 'select_for_update')()", "apps/tools/x.py", ["getattr"]),
        ("cursor.execute('SELECT 1 FROM tenant WHERE id = %s FOR NO KEY UPDATE', [1])", "apps/x.py", ["SQL"]),
        ("Document.objects.select_for_update().get(pk=1)", "apps/knowledge/x.py", []),
        ("Conversation.objects.select_for_update().get(id=1)", "apps/conversations/locks.py", []),
        ("Conversation.objects.filter(id=1).update(turn=2)", "apps/conversations/x.py", []),
        ("logger.info('waiting for update of %s', 1)", "apps/conversations/x.py", []),
    ],
)
def test_the_scan_finds_row_locks_however_they_are_written(
    source: str, relative: str, expected: list[str]
) -> None:
    assert [v.rsplit(" ", 1)[1] for v in violations(source, relative)] == expected


# ---- rows to lock -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rows:
    """One conversation's rows of every locked kind, in a tenant with a second conversation beside it."""

    tenant: Tenant
    agent: User
    conversation: Conversation
    message: Message
    handoff: Handoff
    run: ToolRun
    other: Conversation


def rows_make(tenant: Tenant, agent: User) -> Rows:
    def conversation_make() -> Conversation:
        conversation = Conversation.objects.create(tenant=tenant, status=Conversation.Status.WAITING)
        Message.objects.create(
            tenant=tenant,
            conversation=conversation,
            role=Message.Role.ASSISTANT,
            status=Message.Status.STREAMING,
            turn=1,
            heartbeat_at=timezone.now(),
        )
        Handoff.objects.create(
            tenant=tenant,
            conversation=conversation,
            reason=HandoffReason.CUSTOMER_REQUEST,
            queued_at=timezone.now(),
        )
        ToolRun.objects.create(
            tenant=tenant,
            conversation_ref=conversation.id,
            tool="plan_change",
            idempotency_key=uuid.uuid4().hex,
            status=RunStatus.AWAITING_APPROVAL,
        )
        return conversation

    conversation, other = conversation_make(), conversation_make()
    Presence.objects.get_or_create(tenant=tenant, user=agent)
    return Rows(
        tenant=tenant,
        agent=agent,
        conversation=conversation,
        message=Message.objects.get(conversation=conversation),
        handoff=Handoff.objects.get(conversation=conversation),
        run=ToolRun.objects.get(conversation_ref=conversation.id),
        other=other,
    )


@pytest.fixture
def rows(make_tenant: Any, make_user: Any) -> Rows:
    tenant = make_tenant()
    return rows_make(tenant, make_user(tenant, roles=["agent"]))


# ---- each lock is held against a writer ------------------------------------------------------------------


class Held:
    """Runs `take` in a transaction on a thread of its own (its own connection) and keeps the transaction
    open until released."""

    def __init__(self, take: Callable[[], object]) -> None:
        self._take = take
        self._held = threading.Event()
        self._release = threading.Event()
        self.error: BaseException | None = None
        self.taken: object = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            with transaction.atomic():
                self.taken = self._take()
                self._held.set()
                self._release.wait(timeout=30)
        except BaseException as exc:
            self.error = exc
        finally:
            self._held.set()
            connection.close()

    def __enter__(self) -> Held:
        self._thread.start()
        assert self._held.wait(timeout=10)
        assert self.error is None, self.error
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._thread.join(timeout=10)
        assert not self._thread.is_alive()
        assert self.error is None, self.error


def write(update: Callable[[], int]) -> str:
    """'blocked' if the update waits for a lock (PostgreSQL gives up after 300 ms), else 'written'."""
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '300ms'")
            assert update() == 1
    except OperationalError as exc:
        if "lock timeout" not in str(exc):
            raise
        return "blocked"
    return "written"


def _conversation_write(conversation: Conversation) -> Callable[[], int]:
    return lambda: Conversation.objects.filter(id=conversation.id).update(turn=7)


def _tenant_write(tenant: Tenant) -> Callable[[], int]:
    return lambda: Tenant.objects.filter(id=tenant.id).update(name="Renamed")


LOCKS: dict[str, tuple[Callable[[Rows], object], Callable[[Rows], Callable[[], int]]]] = {
    "conversation_lock": (
        lambda r: conversation_lock(conversation_id=r.conversation.id, tenant_id=r.tenant.id),
        lambda r: _conversation_write(r.conversation),
    ),
    "conversation_lock_find": (
        lambda r: conversation_lock_find(conversation_id=r.conversation.id, tenant_id=r.tenant.id),
        lambda r: _conversation_write(r.conversation),
    ),
    "conversation_lock_existing": (
        lambda r: conversation_lock_existing(conversation_id=r.conversation.id),
        lambda r: _conversation_write(r.conversation),
    ),
    "guest_conversation_lock": (
        lambda r: guest_conversation_lock(
            tenant_id=r.tenant.id, conversation_id=r.conversation.id, visitor_id=r.conversation.visitor_id
        ),
        lambda r: _conversation_write(r.conversation),
    ),
    "conversation_and_message_lock (conversation)": (
        lambda r: conversation_and_message_lock(conversation_id=r.conversation.id, message_id=r.message.id),
        lambda r: _conversation_write(r.conversation),
    ),
    "conversation_and_message_lock (message)": (
        lambda r: conversation_and_message_lock(conversation_id=r.conversation.id, message_id=r.message.id),
        lambda r: lambda: Message.objects.filter(id=r.message.id).update(text="written meanwhile"),
    ),
    "streaming_messages_lock": (
        lambda r: streaming_messages_lock(conversation=r.conversation),
        lambda r: lambda: Message.objects.filter(id=r.message.id).update(text="written meanwhile"),
    ),
    "presence_lock": (
        lambda r: presence_lock(tenant=r.tenant, agent=r.agent),
        lambda r: lambda: Presence.objects.filter(tenant=r.tenant, user=r.agent).update(sockets=3),
    ),
    "handoff_open_lock": (
        lambda r: handoff_open_lock(conversation=r.conversation),
        lambda r: lambda: Handoff.objects.filter(id=r.handoff.id).update(priority=2),
    ),
    "handoff_lock": (
        lambda r: handoff_lock(handoff_id=r.handoff.id),
        lambda r: lambda: Handoff.objects.filter(id=r.handoff.id).update(priority=2),
    ),
    "tool_run_lock": (
        lambda r: tool_run_lock(run_id=r.run.id),
        lambda r: lambda: ToolRun.objects.filter(id=r.run.id).update(summary="written meanwhile"),
    ),
    "conversation_tool_run_lock": (
        lambda r: conversation_tool_run_lock(
            tenant=r.tenant, conversation_id=r.conversation.id, run_id=r.run.id
        ),
        lambda r: lambda: ToolRun.objects.filter(id=r.run.id).update(summary="written meanwhile"),
    ),
    "tenant_ticket_number_lock": (
        lambda r: tenant_ticket_number_lock(tenant_id=r.tenant.id),
        lambda r: _tenant_write(r.tenant),
    ),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", list(LOCKS))
def test_each_lock_blocks_a_concurrent_writer_of_its_row_until_commit(rows: Rows, name: str) -> None:
    take, writer = LOCKS[name]
    with Held(lambda: take(rows)) as held:
        assert held.taken is not None or name == "tenant_ticket_number_lock"
        assert write(writer(rows)) == "blocked"
        # Row locks, not table locks: the conversation beside it is written at once.
        assert write(_conversation_write(rows.other)) == "written"
    assert write(writer(rows)) == "written"


def _insert_in(conversation: Conversation) -> Callable[[], int]:
    """A transaction of the company that writes: its event's foreign keys are checked at commit, with a
    key-share lock on the company's row."""

    def insert() -> int:
        event_append(conversation_lock(conversation_id=conversation.id), "lock.test")
        return 1

    return insert


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", ["handoff_lock", "tool_run_lock"])
def test_a_lock_that_reads_the_tenant_does_not_lock_it(rows: Rows, name: str) -> None:
    """Both read the tenant in the same query; FOR UPDATE without OF would lock the company's row too, and
    hold up its updates and the commit of every transaction of the company that wrote a row."""
    take, _ = LOCKS[name]
    with Held(lambda: take(rows)) as held:
        assert held.taken is not None
        assert write(_insert_in(rows.other)) == "written"
        assert write(_tenant_write(rows.tenant)) == "written"
    assert ConversationEvent.objects.filter(conversation=rows.other, type="lock.test").count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_ticket_number_lock_excludes_the_next_numberer_but_not_the_companys_inserts(rows: Rows) -> None:
    def numberer() -> int:
        tenant_ticket_number_lock(tenant_id=rows.tenant.id)
        return 1

    with Held(lambda: tenant_ticket_number_lock(tenant_id=rows.tenant.id)):
        assert write(numberer) == "blocked"
        assert write(_insert_in(rows.other)) == "written"
    assert ConversationEvent.objects.filter(conversation=rows.other, type="lock.test").count() == 1


def test_the_lock_functions_find_what_the_call_sites_found(rows: Rows) -> None:
    """The same rows as the queries they replaced: scoped to the tenant when given, None, NotFound or
    DoesNotExist when missing, and a guest's conversation only while it is open to their token."""
    missing = uuid.uuid4()
    with transaction.atomic():
        assert conversation_lock(conversation_id=rows.conversation.id) == rows.conversation
        with pytest.raises(NotFound):
            conversation_lock(conversation_id=rows.conversation.id, tenant_id=uuid.uuid4())
        assert conversation_lock_find(conversation_id=missing) is None
        with pytest.raises(Conversation.DoesNotExist):
            conversation_lock_existing(conversation_id=missing)
        assert (
            guest_conversation_lock(
                tenant_id=rows.tenant.id, conversation_id=rows.conversation.id, visitor_id=uuid.uuid4()
            )
            is None
        )
        Conversation.objects.filter(id=rows.conversation.id).update(visitor_ended_at=timezone.now())
        assert (
            guest_conversation_lock(
                tenant_id=rows.tenant.id,
                conversation_id=rows.conversation.id,
                visitor_id=rows.conversation.visitor_id,
            )
            is None
        )
        assert conversation_and_message_lock(
            conversation_id=rows.conversation.id, message_id=rows.message.id
        ) == (rows.conversation, rows.message)
        assert streaming_messages_lock(conversation=rows.other) == list(
            Message.objects.filter(conversation=rows.other)
        )
        assert handoff_open_lock(conversation=rows.conversation) == rows.handoff
        Handoff.objects.filter(id=rows.handoff.id).update(status=Handoff.Status.RESOLVED)
        assert handoff_open_lock(conversation=rows.conversation) is None
        assert handoff_lock(handoff_id=missing) is None
        with pytest.raises(ToolRun.DoesNotExist):
            tool_run_lock(run_id=missing)
        assert (
            conversation_tool_run_lock(tenant=rows.tenant, conversation_id=rows.other.id, run_id=rows.run.id)
            is None
        )
        assert presence_lock(tenant=rows.tenant, agent=rows.agent) == Presence.objects.get(user=rows.agent)


# ---- nested locks from two transactions ------------------------------------------------------------------


def _threads(*targets: Callable[[], None]) -> list[BaseException | None]:
    """Runs each target in a transaction on its own thread and connection; the error each raised."""
    errors: list[BaseException | None] = [None] * len(targets)

    def run(i: int, target: Callable[[], None]) -> None:
        try:
            with transaction.atomic():
                target()
        except BaseException as exc:
            errors[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, t), daemon=True) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive()
    return errors


def _deadlocked(error: BaseException | None) -> bool:
    return isinstance(error, OperationalError) and "deadlock detected" in str(error)


@pytest.mark.django_db(transaction=True)
def test_two_transactions_taking_the_whole_order_at_once_do_not_deadlock(
    make_tenant: Any, make_user: Any
) -> None:
    """Two conversations of one company, two agents: each transaction takes every lock of the order, writes
    events between them, meets the other while both hold everything up to their tool run, then both ask for
    the company's ticket lock. One waits for the other's commit; both commit, three rounds running."""
    tenant = make_tenant()
    one = rows_make(tenant, make_user(tenant, roles=["agent"]))
    two = rows_make(tenant, make_user(tenant, roles=["agent"]))
    meet = threading.Barrier(2, timeout=10)

    def nested(r: Rows) -> Callable[[], None]:
        def take() -> None:
            conversation = conversation_lock(conversation_id=r.conversation.id, tenant_id=tenant.id)
            event_append(conversation, "lock.conversation")
            presence_lock(tenant=tenant, agent=r.agent)
            [message] = streaming_messages_lock(conversation=conversation)
            event_append(conversation, "lock.message", message=message)
            assert handoff_open_lock(conversation=conversation) == r.handoff
            assert conversation_tool_run_lock(tenant=tenant, conversation_id=conversation.id, run_id=r.run.id)
            meet.wait()
            tenant_ticket_number_lock(tenant_id=tenant.id)
            event_append(conversation, "lock.tenant")

        return take

    for _ in range(3):
        assert _threads(nested(one), nested(two)) == [None, None]
    for r in (one, two):
        types = list(
            ConversationEvent.objects.filter(conversation=r.conversation).values_list("type", flat=True)
        )
        assert types == ["lock.conversation", "lock.message", "lock.tenant"] * 3


@pytest.mark.django_db(transaction=True)
def test_a_lone_later_lock_waits_behind_a_transaction_holding_earlier_ones(rows: Rows) -> None:
    """A transition (conversation, then its handoff) and an escalation (the handoff alone) at once: the
    transition waits for the escalation's commit, then sees its change, and both commit."""
    meet = threading.Barrier(2, timeout=10)

    def transition() -> None:
        conversation = conversation_lock(conversation_id=rows.conversation.id, tenant_id=rows.tenant.id)
        event_append(conversation, "lock.conversation")
        meet.wait()
        handoff = handoff_open_lock(conversation=conversation)
        assert handoff is not None
        assert handoff.priority == 1  # the escalation committed first
        Handoff.objects.filter(id=handoff.id).update(status=Handoff.Status.CLAIMED, agent=rows.agent)

    def escalation() -> None:
        handoff = handoff_lock(handoff_id=rows.handoff.id)
        assert handoff is not None
        meet.wait()
        handoff.priority = 1
        handoff.save(update_fields=["priority", "updated_at"])

    assert _threads(transition, escalation) == [None, None]
    assert Handoff.objects.values_list("status", "priority").get(id=rows.handoff.id) == ("claimed", 1)


@pytest.mark.django_db(transaction=True)
def test_locks_against_the_order_deadlock_which_is_why_there_is_one(rows: Rows) -> None:
    """The control for the two tests above: a transaction that goes back to the conversation while holding
    its handoff meets the transition's opposite order, and PostgreSQL fails one of them."""
    meet = threading.Barrier(2, timeout=10)

    def transition() -> None:
        conversation = conversation_lock(conversation_id=rows.conversation.id)
        meet.wait()
        handoff_open_lock(conversation=conversation)

    def backwards() -> None:
        handoff_lock(handoff_id=rows.handoff.id)
        meet.wait()
        conversation_lock(conversation_id=rows.conversation.id)

    errors = _threads(transition, backwards)
    assert sorted(_deadlocked(e) for e in errors) == [False, True]
    assert [e for e in errors if not _deadlocked(e)] == [None]
