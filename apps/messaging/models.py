"""A company's messaging channel: an SMS or WhatsApp-style provider speaking webhooks
(docs/architecture/channels.md). Its conversations are keyed by the customer's phone number on the
conversation itself (Conversation.channel_key), one per (company, number)."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from apps.accounts.models import Tenant, TenantScopedModel


class MessagingChannel(TenantScopedModel):
    """How one company's messaging provider reaches us and we reach it. One per tenant.

    Both secrets are stored sealed (apps/core/sealing.py), never rendered back, never logged: the inbound
    signing secret proves a webhook came from the provider; the outbound token is our bearer token at the
    provider's API.
    """

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="messaging_channel")
    enabled = models.BooleanField(default=False)
    inbound_secret = models.CharField(max_length=500, blank=True)
    # The provider's API: `{base_url}/messages`. Its host must be on MESSAGING_ALLOWED_HOSTS or on this
    # company's own list (set by the platform operator, in the Django admin).
    base_url = models.URLField(blank=True)
    auth_token = models.CharField(max_length=500, blank=True)
    allowed_hosts = ArrayField(models.CharField(max_length=253), default=list, blank=True)
    # The company's number (or sender id) the customer writes to and our answers come from.
    sender_id = models.CharField(max_length=32, blank=True)
    timeout_seconds = models.FloatField(default=10.0)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(timeout_seconds__gt=0) & Q(timeout_seconds__lte=30),
                name="msgchannel_timeout_range",
            ),
            models.CheckConstraint(
                condition=Q(enabled=False) | (~Q(base_url="") & ~Q(sender_id="") & ~Q(inbound_secret="")),
                name="msgchannel_enabled_complete",
            ),
        ]

    def __str__(self) -> str:
        return f"messaging for {self.tenant_id}"
