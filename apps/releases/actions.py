"""Editors' writes on a company's golden questions as audited actions (apps/audit/actions.py): a
separate permission check (an editor or admin of the company; `actor=None` is the desk itself: the demo
seed, tests), the change, and its audit row in one transaction. Audit rows hold ids and counts, never the
question's words (it may have come from a customer's conversation)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apps.accounts.models import Role, Tenant, User
from apps.accounts.selectors import access_tenant
from apps.audit.actions import Action
from apps.core.errors import NotFound
from apps.knowledge.models import Document
from apps.releases.models import GoldenQuestion

EDITORS = (Role.EDITOR,)  # admins hold every role (access_tenant)


@dataclass(frozen=True)
class GoldenFields:
    """A golden question's checked values (services.golden_fields_checked)."""

    question: str
    expect: list[str]
    document: Document | None
    must_abstain: bool


class GoldenAction(Action[GoldenQuestion]):
    tenant: Tenant
    actor: User | None
    target_type = "GoldenQuestion"

    def check(self) -> None:
        if self.actor is not None:
            # The same rule as the golden pages: a stranger gets NotFound, an agent Forbidden.
            access_tenant(actor=self.actor, slug=self.tenant.slug, roles=EDITORS)
        golden: GoldenQuestion | None = self.params.get("golden")
        if golden is not None and golden.tenant_id != self.tenant.id:
            raise NotFound()

    def audit_data(self, result: GoldenQuestion) -> dict[str, Any]:
        return {
            "must_abstain": result.must_abstain,
            "expect_count": len(result.expect or []),
            "document_id": str(result.document_id) if result.document_id else None,
            "source": result.source,
        }


class GoldenQuestionAdd(GoldenAction):
    action = "golden.question_add"

    def perform(self) -> GoldenQuestion:
        fields: GoldenFields = self.params["fields"]
        return GoldenQuestion.objects.create(
            tenant=self.tenant,
            question=fields.question,
            expect=fields.expect,
            document=fields.document,
            document_title=fields.document.title if fields.document else "",
            must_abstain=fields.must_abstain,
            source=self.params["source"],
            source_ref=self.params.get("source_ref"),
            created_by=self.actor,
        )


class GoldenQuestionUpdate(GoldenAction):
    action = "golden.question_update"

    def perform(self) -> GoldenQuestion:
        golden: GoldenQuestion = self.params["golden"]
        fields: GoldenFields = self.params["fields"]
        self._before = (golden.question, list(golden.expect or []), golden.document_id, golden.must_abstain)
        golden.question = fields.question
        golden.expect = fields.expect
        golden.document = fields.document
        golden.document_title = fields.document.title if fields.document else ""
        golden.must_abstain = fields.must_abstain
        if self.changed(golden):
            golden.save(
                update_fields=[
                    "question",
                    "expect",
                    "document",
                    "document_title",
                    "must_abstain",
                    "updated_at",
                ]
            )
        return golden

    def changed(self, result: GoldenQuestion) -> bool:
        after = (result.question, list(result.expect or []), result.document_id, result.must_abstain)
        return after != self._before


class GoldenQuestionDelete(GoldenAction):
    action = "golden.question_delete"

    def perform(self) -> GoldenQuestion:
        golden: GoldenQuestion = self.params["golden"]
        self._id = golden.pk
        # Its results stay, with their question's words (GoldenResult.question_text): runs are history.
        golden.delete()
        golden.pk = self._id
        return golden
