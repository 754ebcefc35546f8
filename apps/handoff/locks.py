"""Row locks of the human side: the only module that locks Presence, Handoff and (for ticket numbers) Tenant
rows.

Their places in the desk's lock order (Conversation, Presence, Message, Handoff, ToolRun, Tenant; written
down in apps.conversations.locks and docs/architecture/locking.md): a transaction that holds a
conversation locks it first (`apps.conversations.locks.conversation_lock`), then the claiming agent's
presence, then (through the ownership listener) the conversation's open handoff, and the tenant's row last.
The escalation of a handoff locks the handoff alone.
"""

from __future__ import annotations

import uuid

from apps.accounts.models import Tenant, User
from apps.conversations.models import Conversation
from apps.handoff.models import Handoff, Presence

# Lock only the row of the queryset's own table, never a joined one (apps.conversations.locks).
_SELF = ("self",)


def presence_lock(*, tenant: Tenant, agent: User) -> Presence:
    """The agent's presence row in the company, locked (created if missing), so two claims by one agent
    count their load one after the other. After the conversation's lock, before its messages'."""
    presence, _ = Presence.objects.select_for_update(of=_SELF).get_or_create(tenant=tenant, user=agent)
    return presence


def handoff_open_lock(*, conversation: Conversation) -> Handoff | None:
    """The open handoff of a conversation the caller holds locked, locked after its messages; None if there
    is none."""
    return (
        Handoff.objects.select_for_update(of=_SELF)
        .filter(conversation=conversation, status__in=Handoff.OPEN)
        .first()
    )


def handoff_lock(*, handoff_id: uuid.UUID) -> Handoff | None:
    """A handoff, locked on its own (no conversation lock held), with its tenant read in the same query
    but not locked; None if there is none."""
    return Handoff.objects.select_for_update(of=_SELF).filter(id=handoff_id).select_related("tenant").first()


def tenant_ticket_number_lock(*, tenant_id: uuid.UUID) -> None:
    """Serialises the numbering of the company's tickets: the tenant's row, last in the order.

    FOR NO KEY UPDATE, not FOR UPDATE: a transaction that inserted a row referencing the company (a
    message, an event, the ticket itself) takes a FOR KEY SHARE lock on this row when its foreign keys are
    checked, at commit. FOR UPDATE excludes that, so while one ticket was numbered every other commit of
    the company that had written anything waited for it. FOR NO KEY UPDATE still excludes the next
    numberer (and any update of the company's row), and lets those commits through."""
    Tenant.objects.select_for_update(no_key=True).filter(id=tenant_id).first()
