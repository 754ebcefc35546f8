"""Celery interfaces of the handoff app: ids in, one service call (STYLE rule 9). Routed to the
`handoff` queue, so a case file never waits behind an ingestion."""

from __future__ import annotations

from celery import shared_task

from apps.handoff import casefile, email_path, escalation


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def case_file_build(handoff_id: str) -> str:
    return str(casefile.case_file_build(handoff_id=handoff_id).case_file_status)


@shared_task(acks_late=True, soft_time_limit=30, time_limit=60)
def handoff_escalate(handoff_id: str) -> bool:
    handoff = escalation.handoff_escalate(handoff_id=handoff_id)
    if handoff is not None:
        # Still waiting: check again when the next level is due.
        handoff_escalate.apply_async((handoff_id,), countdown=escalation.escalation_delay(handoff_id))
    return handoff is not None


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def handoffs_escalate_due() -> int:
    return escalation.handoffs_escalate_due()


@shared_task(
    acks_late=True,
    soft_time_limit=30,
    time_limit=60,
    max_retries=5,
    autoretry_for=(OSError,),
    retry_backoff=True,
)
def ticket_reply_send(message_id: str) -> bool:
    return email_path.ticket_reply_email(message_id=message_id)
