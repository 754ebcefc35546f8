"""Tool runs in the conversation: their timeline events, results that come after the answer, and the
customer's confirmation of a proposed change (docs/architecture/tools.md).

`tool_run_record` is registered with apps.tools.hooks in ConversationsConfig.ready(): tools sits below
conversations and tells it about runs only through that hook.
"""

from __future__ import annotations

import logging
import uuid

from django.db import transaction

from apps.accounts.models import Tenant
from apps.conversations.events import event_append
from apps.conversations.identity import SessionClaims
from apps.conversations.locks import conversation_lock_find
from apps.conversations.models import Conversation, ConversationEvent, Message
from apps.conversations.services import _conversation_lock
from apps.conversations.tool_selectors import tool_run_event_data
from apps.core.errors import NotFound
from apps.tools import services as tool_services
from apps.tools.locks import conversation_tool_run_lock
from apps.tools.models import RunStatus, ToolRun

logger = logging.getLogger(__name__)

# Results the customer is told about when they come after the answer stopped waiting.
_POSTED = (RunStatus.DONE, RunStatus.FAILED, RunStatus.REJECTED)


def tool_run_record(run: ToolRun) -> None:
    """Appends the run's new state to its conversation's timeline, and posts a late result once."""
    if run.conversation_ref is None:
        return
    with transaction.atomic():
        conversation = conversation_lock_find(conversation_id=run.conversation_ref, tenant_id=run.tenant_id)
        if conversation is None:
            return
        event_append(conversation, "tool.run", data=tool_run_event_data(run))
        # While a person has the conversation the assistant says nothing: the run's card (the event above)
        # shows its outcome, and the agent sees it in the console.
        speaks = conversation.status == Conversation.Status.ASSISTANT
        if speaks and run.deliver_later and run.status in _POSTED and run.summary:
            already = ConversationEvent.objects.filter(
                conversation=conversation, type="tool.result", data__run_id=str(run.id)
            ).exists()
            if not already:
                message = Message.objects.create(
                    tenant_id=conversation.tenant_id,
                    conversation=conversation,
                    role=Message.Role.ASSISTANT,
                    status=Message.Status.COMPLETE,
                    turn=conversation.turn,
                    # Our own sentence rendered from a validated result: no customer text in it.
                    text=run.summary,
                    text_redacted=run.summary,
                    offer_handoff=run.status == RunStatus.FAILED,
                )
                event_append(conversation, "tool.result", message=message, data={"run_id": str(run.id)})
                event_append(conversation, "assistant.completed", message=message)


def tool_run_decide_by_customer(
    *, tenant: Tenant, claims: SessionClaims, run_id: uuid.UUID | str, approve: bool
) -> ToolRun:
    """The customer confirms or cancels a change proposed in their own conversation, as the same
    verified customer it was proposed for."""
    with transaction.atomic():
        conversation = _conversation_lock(tenant=tenant, claims=claims)
        run = conversation_tool_run_lock(tenant=tenant, conversation_id=conversation.id, run_id=run_id)
        external_id = conversation.contact.external_id if conversation.contact else ""
        if run is None or not external_id or run.customer != external_id:
            raise NotFound("There is no such request in this conversation.")
    return tool_services.tool_run_decide(run=run, approve=approve, by_customer=True)
