"""Row locks of tool runs: the only module that locks ToolRun rows.

A run comes fifth in the desk's lock order (Conversation, Presence, Message, Handoff, ToolRun, Tenant;
written down in apps.conversations.locks and docs/architecture/locking.md): a transaction that locks the
conversation of a run locks the conversation first. The worker executing a run locks the run alone, and
the conversation hears of it only after commit (apps.tools.hooks), so it never takes a lock after a run's.
"""

from __future__ import annotations

import uuid

from apps.accounts.models import Tenant
from apps.tools.models import ToolRun


def tool_run_lock(*, run_id: uuid.UUID | str) -> ToolRun:
    """The run, locked, with its tenant read in the same query (the tenant's row is not locked: a lock on it
    would conflict with every insert of the company). ToolRun.DoesNotExist if there is none."""
    return ToolRun.objects.select_for_update(of=("self",)).select_related("tenant").get(id=run_id)


def conversation_tool_run_lock(
    *, tenant: Tenant, conversation_id: uuid.UUID, run_id: uuid.UUID | str
) -> ToolRun | None:
    """A run proposed in a conversation the caller holds locked, locked after it; None if the tenant's
    conversation has no such run."""
    return (
        ToolRun.objects.for_tenant(tenant)
        .filter(id=run_id, conversation_ref=conversation_id)
        .select_for_update(of=("self",))
        .first()
    )
