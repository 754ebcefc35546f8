"""A hook that lets a higher app hold an editor's knowledge change back until it is checked.

The knowledge pages and API ask `change_gate_request(...)` before publishing, rolling back, unpublishing or
deleting a document. With no gate registered, or when the gate answers None (the company has no golden
questions), the change is applied at once as always. Otherwise the gate has recorded a pending change and
will apply it itself once the company's golden answers survive it, or wait for the editor's confirmation.
The releases app fills the hook in its `AppConfig.ready()` (apps/releases/gate.py): knowledge never
imports it (STYLE: lower apps expose registries).
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from typing import Any, Literal, Protocol

from django.urls import reverse

from apps.accounts.models import Tenant, User
from apps.knowledge.models import Document

ChangeKind = Literal["publish", "rollback", "unpublish", "delete"]


class PendingChange(Protocol):
    """What the knowledge app needs to know of a held change: where to send the editor."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def kind(self) -> str: ...
    @property
    def status(self) -> str: ...


class ChangeGate(Protocol):
    def __call__(
        self,
        *,
        tenant: Tenant,
        kind: ChangeKind,
        document: Document,
        version_number: int | None,
        actor: User,
        effective_date: datetime.date | None = None,
    ) -> PendingChange | None: ...


class PendingLister(Protocol):
    def __call__(self, *, document: Document) -> Sequence[PendingChange]: ...


_gate: ChangeGate | None = None
_pending: PendingLister | None = None


def change_gate_set(fn: ChangeGate | None) -> None:
    """Registers the gate (None removes it)."""
    global _gate
    _gate = fn


def change_gate() -> ChangeGate | None:
    return _gate


def pending_lister_set(fn: PendingLister | None) -> None:
    """Registers what lists a document's changes still being checked or held (None removes it)."""
    global _pending
    _pending = fn


def pending_changes(*, tenant: Tenant, document: Document) -> list[tuple[PendingChange, str]]:
    """The document's changes still being checked or waiting for confirmation, each with its page: the
    document page links them, so an editor who left the change page finds it again."""
    if _pending is None:
        return []
    return [(change, change_page_url(tenant=tenant, change=change)) for change in _pending(document=document)]


def change_gate_request(
    *,
    tenant: Tenant,
    kind: ChangeKind,
    document: Document,
    version_number: int | None,
    actor: User,
    effective_date: datetime.date | None = None,
) -> PendingChange | None:
    """The pending change the gate recorded, or None: apply the change directly."""
    gate = change_gate()
    if gate is None:
        return None
    return gate(
        tenant=tenant,
        kind=kind,
        document=document,
        version_number=version_number,
        actor=actor,
        effective_date=effective_date,
    )


def change_page_url(*, tenant: Tenant, change: PendingChange) -> str:
    return reverse("kb-change", kwargs={"slug": tenant.slug, "change_id": change.id})


def change_payload(*, tenant: Tenant, change: PendingChange) -> dict[str, Any]:
    """The API's 202 body: the change is being checked against the company's golden answers."""
    return {
        "id": str(change.id),
        "kind": change.kind,
        "status": change.status,
        "url": reverse("api-kb-change", kwargs={"slug": tenant.slug, "change_id": change.id}),
        "page": change_page_url(tenant=tenant, change=change),
        "message": "The change is being checked against the company's golden answers.",
    }
