"""Whose memory: a verified customer, or an anonymous visitor of the widget (docs/architecture/memory.md).

A verified session is remembered as its contact (on every device and conversation the company vouches
for them); a guest as the visitor id inside its signed session token, which the browser keeps between
page loads and chats until the session ends. A guest who signs in does not bring their guest memory:
like their guest conversation, nothing says the guest was them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from apps.conversations.identity import SessionClaims
from apps.conversations.models import Conversation


@dataclass(frozen=True)
class Subject:
    tenant_id: uuid.UUID
    contact_id: uuid.UUID | None
    visitor_id: uuid.UUID | None

    @property
    def kind(self) -> str:
        return "contact" if self.contact_id is not None else "visitor"

    def lookup(self) -> dict[str, Any]:
        """Filter arguments for this subject's rows (tenant always included)."""
        if self.contact_id is not None:
            return {"tenant_id": self.tenant_id, "contact_id": self.contact_id}
        return {"tenant_id": self.tenant_id, "contact__isnull": True, "visitor_id": self.visitor_id}

    def fields(self) -> dict[str, Any]:
        """Column values for a new row of this subject."""
        if self.contact_id is not None:
            return {"tenant_id": self.tenant_id, "contact_id": self.contact_id, "visitor_id": None}
        return {"tenant_id": self.tenant_id, "contact_id": None, "visitor_id": self.visitor_id}


def subject_of_session(claims: SessionClaims) -> Subject:
    if claims.contact_id is not None:
        return Subject(tenant_id=claims.tenant_id, contact_id=claims.contact_id, visitor_id=None)
    return Subject(tenant_id=claims.tenant_id, contact_id=None, visitor_id=claims.visitor_id)


def subject_of_conversation(conversation: Conversation) -> Subject:
    if conversation.contact_id is not None:
        return Subject(tenant_id=conversation.tenant_id, contact_id=conversation.contact_id, visitor_id=None)
    return Subject(tenant_id=conversation.tenant_id, contact_id=None, visitor_id=conversation.visitor_id)
