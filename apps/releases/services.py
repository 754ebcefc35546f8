"""Writes on a company's golden questions (audited in apps/releases/actions.py). Runs are in runner.py.

A golden question expects a fact phrase and cites the policy it comes from, or (`must_abstain`) expects
the assistant to say it does not know. Each refusal is a BadRequest of one sentence, and stores nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from apps.accounts.models import Tenant, User
from apps.core.errors import BadRequest
from apps.knowledge.models import Document
from apps.releases.actions import (
    GoldenFields,
    GoldenQuestionAdd,
    GoldenQuestionDelete,
    GoldenQuestionUpdate,
)
from apps.releases.models import GoldenQuestion

QUESTION_MAX_CHARS = 1000
PHRASE_MAX_CHARS = 200
PHRASES_MAX = 10
_UNSET: Any = object()


def _document(*, tenant: Tenant, document_id: Any, document_title: str | None) -> Document | None:
    if document_id not in (None, ""):
        try:
            key = uuid.UUID(str(document_id))
        except ValueError:
            raise BadRequest(f"{document_id!r} is not a policy id.") from None
        # Another company's policy is answered as an unknown one: its existence is not this company's.
        document = Document.objects.for_tenant(tenant).filter(id=key).first()
        if document is None:
            raise BadRequest("There is no such policy in this company.")
        return document
    title = (document_title or "").strip()
    if title:
        document = (
            Document.objects.for_tenant(tenant).filter(title__iexact=title).order_by("created_at").first()
        )
        if document is None:
            raise BadRequest(f"This company has no policy titled {title!r}.")
        return document
    return None


def golden_fields_checked(
    *,
    tenant: Tenant,
    question: str,
    expect: Iterable[str] | None,
    document_id: Any = None,
    document_title: str | None = None,
    must_abstain: bool,
) -> GoldenFields:
    """The values of a golden question, checked; BadRequest (one sentence) for the first thing wrong."""
    text = (question or "").strip()
    if not text:
        raise BadRequest("Write the question a customer would ask.")
    if len(text) > QUESTION_MAX_CHARS:
        raise BadRequest(f"A golden question is at most {QUESTION_MAX_CHARS} characters.")
    if isinstance(expect, str):
        expect = [expect]
    # Kept as written: a phrase's spaces can matter ("3 " is not the 3 of "30 days").
    phrases = list(dict.fromkeys(p for p in (expect or []) if isinstance(p, str) and p.strip()))
    if any(len(p) > PHRASE_MAX_CHARS for p in phrases):
        raise BadRequest(f"An expected phrase is at most {PHRASE_MAX_CHARS} characters.")
    if len(phrases) > PHRASES_MAX:
        raise BadRequest(f"A golden question expects at most {PHRASES_MAX} phrases.")
    document = _document(tenant=tenant, document_id=document_id, document_title=document_title)
    if must_abstain:
        if phrases or document is not None:
            raise BadRequest("A question the assistant must not answer expects no phrase and no policy.")
        return GoldenFields(question=text, expect=[], document=None, must_abstain=True)
    if not phrases:
        raise BadRequest("Say which fact the right answer holds, or mark that the assistant must not answer.")
    if document is None:
        raise BadRequest(
            "Choose the policy the right answer cites, or mark that the assistant must not answer."
        )
    return GoldenFields(question=text, expect=phrases, document=document, must_abstain=False)


def golden_question_create(
    *,
    tenant: Tenant,
    question: str,
    expect: Iterable[str] | None = None,
    document_id: Any = None,
    document_title: str | None = None,
    must_abstain: bool = False,
    source: str = GoldenQuestion.Source.MANUAL,
    source_ref: uuid.UUID | None = None,
    actor: User | None,
) -> GoldenQuestion:
    if source not in GoldenQuestion.Source.values:
        raise BadRequest(f"{source!r} is not a source of golden questions.")
    action = GoldenQuestionAdd(tenant=tenant, actor=actor)
    action.check()  # who may, before what: a stranger learns nothing from the validation
    fields = golden_fields_checked(
        tenant=tenant,
        question=question,
        expect=expect,
        document_id=document_id,
        document_title=document_title,
        must_abstain=must_abstain,
    )
    return GoldenQuestionAdd(
        tenant=tenant, actor=actor, fields=fields, source=source, source_ref=source_ref
    ).execute()


def golden_question_update(
    *,
    golden: GoldenQuestion,
    actor: User | None,
    question: str = _UNSET,
    expect: Iterable[str] | None = _UNSET,
    document_id: Any = _UNSET,
    document_title: str | None = _UNSET,
    must_abstain: bool = _UNSET,
) -> GoldenQuestion:
    """Changes what is given; the result is checked as a whole (as at creation)."""
    tenant = golden.tenant
    GoldenQuestionUpdate(tenant=tenant, actor=actor, golden=golden).check()
    if document_id is _UNSET and document_title is _UNSET:
        # Kept as it is; a deleted policy is looked up again by the title the question kept.
        document_id = golden.document_id
        document_title = None if golden.document_id else golden.document_title
    fields = golden_fields_checked(
        tenant=tenant,
        question=golden.question if question is _UNSET else question,
        expect=list(golden.expect or []) if expect is _UNSET else expect,
        document_id=None if document_id is _UNSET else document_id,
        document_title=None if document_title is _UNSET else document_title,
        must_abstain=golden.must_abstain if must_abstain is _UNSET else bool(must_abstain),
    )
    return GoldenQuestionUpdate(tenant=tenant, actor=actor, golden=golden, fields=fields).execute()


def golden_question_delete(*, question: GoldenQuestion, actor: User | None) -> None:
    GoldenQuestionDelete(tenant=question.tenant, actor=actor, golden=question).execute()
