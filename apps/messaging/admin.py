"""Django admin for platform operators: each company's messaging channel, including the hosts its provider
API may be on (which only the operator sets). Both secrets are write-only: password fields never filled in,
no page shows a stored value. Saves go through the service, which seals them."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from apps.messaging import services
from apps.messaging.models import MessagingChannel
from apps.tools.hosts import allowed_host_parse


def _secret_field(label: str, help_text: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=help_text,
    )


class MessagingChannelForm(forms.ModelForm[MessagingChannel]):
    new_inbound_secret = _secret_field(
        "New webhook signing secret",
        "The secret the provider signs its webhooks with. Leave empty to keep the stored one; it is "
        "never shown.",
    )
    new_auth_token = _secret_field(
        "New provider API token",
        "Sent as a bearer token to the provider. Leave empty to keep the stored one.",
    )
    base_url = forms.URLField(
        label="Provider API base URL", required=False, max_length=200, assume_scheme="https"
    )

    class Meta:
        model = MessagingChannel
        fields = ["tenant", "enabled", "base_url", "sender_id", "timeout_seconds", "allowed_hosts"]
        help_texts = {
            "sender_id": "The company's number (international format, +4420...) or sender id.",
            "allowed_hosts": "Hosts this company's provider API may be on, comma-separated, on top of "
            "MESSAGING_ALLOWED_HOSTS: host, host:port or [IPv6]:port.",
        }

    def clean_allowed_hosts(self) -> list[str]:
        entries = [h.strip() for h in self.cleaned_data.get("allowed_hosts") or [] if h.strip()]
        errors = []
        for entry in entries:
            try:
                allowed_host_parse(entry)
            except ValueError as exc:
                errors.append(f"{entry}: {exc}")
        if errors:
            raise forms.ValidationError(errors)
        return entries

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        base_url = data.get("base_url") or ""
        if base_url and "allowed_hosts" not in self.errors:
            probe = MessagingChannel(allowed_hosts=data.get("allowed_hosts") or [])
            if not services.base_url_allowed(probe, base_url):
                self.add_error("base_url", "Add this URL's host to the allowed hosts first.")
        has_secret = bool(data.get("new_inbound_secret")) or bool(self.instance.inbound_secret)
        if data.get("enabled") and not (base_url and data.get("sender_id") and has_secret):
            raise forms.ValidationError(
                "To turn the channel on, give the provider's base URL, the sender and a signing secret."
            )
        return data


@admin.register(MessagingChannel)
class MessagingChannelAdmin(admin.ModelAdmin[MessagingChannel]):
    form = MessagingChannelForm
    list_display = ["tenant", "enabled", "base_url", "sender_id", "has_secret", "has_token", "updated_at"]
    list_filter = ["enabled"]
    search_fields = ["tenant__slug", "tenant__name", "base_url"]
    list_select_related = ["tenant"]
    readonly_fields = ["has_secret", "has_token", "created_at", "updated_at"]

    @admin.display(boolean=True, description="Signing secret stored")
    def has_secret(self, obj: MessagingChannel) -> bool:
        return bool(obj.inbound_secret)

    @admin.display(boolean=True, description="API token stored")
    def has_token(self, obj: MessagingChannel) -> bool:
        return bool(obj.auth_token)

    def get_readonly_fields(self, request: HttpRequest, obj: MessagingChannel | None = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "tenant"] if obj is not None else fields

    def save_model(self, request: HttpRequest, obj: MessagingChannel, form: Any, change: bool) -> None:
        data = form.cleaned_data
        saved = services.messaging_channel_configure(
            tenant=obj.tenant,
            enabled=obj.enabled,
            base_url=obj.base_url,
            sender_id=obj.sender_id,
            inbound_secret=data.get("new_inbound_secret") or None,
            auth_token=data.get("new_auth_token") or None,
            allowed_hosts=list(obj.allowed_hosts),
            timeout_seconds=obj.timeout_seconds,
        )
        obj.pk = saved.pk  # the admin logs and redirects by the saved row
