"""Evidence for one question, from the configured retriever, and the confidence abstention looks at.

    confidence = CONFIDENCE_W_PASSAGE · best passage similarity + (1 - CONFIDENCE_W_PASSAGE) · evidence score

Below the tenant's threshold (`Tenant.abstain_threshold`, set by `manage.py abstain_calibrate`, else
settings.ANSWER_ABSTAIN_CONFIDENCE) the assistant says it doesn't know, offers a person and logs a
knowledge gap. Used by the assistant, `abstain_calibrate`, `model_profile` and bench/answers.py alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from apps.accounts.models import Tenant
from apps.conversations.answering.evidence import (
    Evidence,
    evidence_assemble,
    evidence_choose,
    evidence_rank,
)
from apps.core import tracing
from apps.guardrails.pii import RedactedText
from apps.knowledge.retrieval import Pool, retriever, sentence_neighbours

CONFIDENCE_W_PASSAGE = 0.5


@dataclass(frozen=True)
class Selected:
    pool: Pool
    evidence: Evidence
    confidence: float
    threshold: float

    @property
    def answerable(self) -> bool:
        return bool(self.evidence.items) and self.confidence >= self.threshold


def tenant_threshold(tenant: Tenant) -> float:
    if tenant.abstain_threshold is not None:
        return float(tenant.abstain_threshold)
    return float(settings.ANSWER_ABSTAIN_CONFIDENCE)


def confidence_of(pool: Pool, evidence: Evidence) -> float:
    top = pool.retrieval.top_similarity or 0.0
    return CONFIDENCE_W_PASSAGE * top + (1 - CONFIDENCE_W_PASSAGE) * evidence.score


def evidence_for(
    *, tenant: Tenant, query: RedactedText, vector: list[float], threshold: float | None = None
) -> Selected:
    """Retrieval, ranking and the neighbours the chosen sentences need: two database round trips."""
    limit = tenant_threshold(tenant) if threshold is None else threshold
    with tracing.span("retrieval") as retrieval:
        pool = retriever().retrieve(
            tenant=tenant, query=query, vector=vector, k=settings.ASSISTANT_PASSAGES, threshold=limit
        )
        retrieval.set_attribute("helpdesk.passages", len(pool.retrieval.passages))
        retrieval.set_attribute("helpdesk.top_score", float(pool.retrieval.top_similarity or 0.0))
    with tracing.span("evidence") as step:
        chosen = evidence_choose(evidence_rank(str(query), pool.sentences))
        neighbours = (
            sentence_neighbours(
                tenant=tenant, sentence_ids=[r.candidate.sentence_id for r in chosen], before=2, after=3
            )
            if chosen
            else {}
        )
        evidence = evidence_assemble(chosen, neighbours)
        selected = Selected(
            pool=pool, evidence=evidence, confidence=confidence_of(pool, evidence), threshold=limit
        )
        step.set_attribute("helpdesk.evidence_units", len(evidence.items))
        step.set_attribute("helpdesk.evidence_score", round(evidence.score, 4))
        step.set_attribute("helpdesk.confidence", round(selected.confidence, 4))
        step.set_attribute("helpdesk.answerable", selected.answerable)
    return selected
