"""Telling a company's admins something by email (a handoff nobody took, a canary stopped on its own)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import EmailMessage

from apps.accounts.models import Membership, Role, Tenant

logger = logging.getLogger(__name__)


def tenant_admins_email(*, tenant: Tenant, subject: str, body: str, what: str) -> int:
    """Emails every active admin of the company who has an address; returns how many were addressed. A
    failure to send is logged (naming `what` and the exception's class) and never raised: the event the
    email reports has happened either way and is shown on the admins' pages."""
    admins = sorted(
        set(
            Membership.objects.for_tenant(tenant)
            .filter(role=Role.ADMIN, user__is_active=True)
            .exclude(user__email="")
            .values_list("user__email", flat=True)
        )
    )
    if not admins:
        return 0
    try:
        EmailMessage(
            subject=f"[{tenant.name}] {subject}", body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=admins
        ).send(fail_silently=False)
    except Exception as exc:
        logger.warning("%s email for %s not sent: %s", what, tenant.slug, exc.__class__.__name__)
    return len(admins)
