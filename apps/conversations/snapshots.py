"""The Redis snapshot of a reply being written (apps.conversations.stream writes it), and its removal once
the reply is final.

A snapshot is two keys: the conversation's pointer to the reply streaming in it, and that reply's text so
far. A client catching up reads both (`stream_snapshot`). Every move of a reply out of `streaming`
(complete, failed, superseded, interrupted by a person, swept after its writer died) deletes them once its
transaction commits, so a client that catches up afterwards is not shown the old partial text as if it
were still being written. Deleting is best-effort: the reader also checks the database, and the keys
expire.
"""

from __future__ import annotations

import logging
import uuid

from django.db import transaction

from apps.core.redis import state_key, state_redis

logger = logging.getLogger(__name__)


def streaming_key(tenant_id: object, conversation_id: object) -> str:
    return state_key("streaming", tenant_id, conversation_id)


def partial_key(tenant_id: object, conversation_id: object, message_id: object) -> str:
    return state_key("partial", tenant_id, conversation_id, message_id)


# Deletes a reply's text, and the conversation's pointer only while it still names this reply (a newer
# reply may have taken it), in one atomic round trip.
SNAPSHOT_DISCARD = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return redis.call('DEL', KEYS[2])
"""


def snapshot_discard(*, tenant_id: uuid.UUID, conversation_id: uuid.UUID, message_id: uuid.UUID) -> None:
    try:
        state_redis().eval(
            SNAPSHOT_DISCARD,
            2,
            streaming_key(tenant_id, conversation_id),
            partial_key(tenant_id, conversation_id, message_id),
            str(message_id),
        )
    except Exception as exc:
        logger.warning("snapshot of reply %s not deleted: %s", message_id, exc.__class__.__name__)


def snapshot_discard_on_commit(
    *, tenant_id: uuid.UUID, conversation_id: uuid.UUID, message_id: uuid.UUID
) -> None:
    """Deletes the reply's snapshot once the caller's transaction, which moves it out of `streaming`,
    commits (before it, a reader could still find the reply streaming and need its text)."""
    transaction.on_commit(
        lambda: snapshot_discard(tenant_id=tenant_id, conversation_id=conversation_id, message_id=message_id)
    )
