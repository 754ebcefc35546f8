"""Django admin for platform operators: each company's business-system connection (including the hosts its
adapter may reach, which only the operator sets), its tool choices, and a read-only window on tool runs.

Saves go through the services. The connection's secret is write-only here too: the form has a password
field that is never filled in, and no page shows the stored value.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from apps.accounts.models import User
from apps.tools import services
from apps.tools.connections import base_url_allowed
from apps.tools.hosts import allowed_host_parse, entry_for
from apps.tools.models import AdapterKind, Approval, TenantTool, ToolConnection, ToolRun
from apps.tools.registry import tool_spec, tool_specs


def _operator(request: HttpRequest) -> User | None:
    """The platform operator saving: the audit row names them (the admin site checked their permission)."""
    return request.user if isinstance(request.user, User) else None


class ToolConnectionForm(forms.ModelForm[ToolConnection]):
    new_auth_secret = forms.CharField(
        label="New API token",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to keep the stored token. It is never shown.",
    )
    clear_auth_secret = forms.BooleanField(label="Remove the stored token", required=False)
    base_url = forms.URLField(label="Base URL", required=False, max_length=200, assume_scheme="https")

    class Meta:
        model = ToolConnection
        fields = ["tenant", "adapter", "base_url", "timeout_seconds", "allowed_hosts"]  # never auth_secret
        help_texts = {
            "allowed_hosts": "Hosts this company's HTTP adapter may reach, comma-separated, on top of "
            "TOOLS_ALLOWED_HOSTS: host, host:port or [IPv6]:port. A host without a port allows only "
            "the default port (443 for https). The company's admins cannot change this list.",
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
        if data.get("new_auth_secret") and data.get("clear_auth_secret"):
            raise forms.ValidationError("Either give a new token or remove the stored one, not both.")
        adapter, base_url = data.get("adapter"), data.get("base_url") or ""
        if adapter == AdapterKind.HTTP and base_url:
            hosts = data.get("allowed_hosts") or []
            if "allowed_hosts" not in self.errors and not base_url_allowed(
                ToolConnection(allowed_hosts=hosts), base_url
            ):
                self.add_error("base_url", _not_allowed_error(base_url))
        return data


def _not_allowed_error(base_url: str) -> str:
    parts = urlsplit(base_url)
    try:
        port = parts.port
    except ValueError:  # URLField lets any five digits through
        return "The URL's port must be a number from 1 to 65535."
    needed = entry_for(scheme=parts.scheme, host=parts.hostname or "", port=port)
    return f"Add {needed} to the allowed hosts first."


@admin.register(ToolConnection)
class ToolConnectionAdmin(admin.ModelAdmin[ToolConnection]):
    form = ToolConnectionForm
    list_display = ["tenant", "adapter", "base_url", "timeout_seconds", "has_secret", "updated_at"]
    list_filter = ["adapter"]
    search_fields = ["tenant__slug", "tenant__name", "base_url"]
    list_select_related = ["tenant"]
    readonly_fields = ["has_secret", "created_at", "updated_at"]

    @admin.display(boolean=True, description="Token stored")
    def has_secret(self, obj: ToolConnection) -> bool:
        return bool(obj.auth_secret)

    def get_readonly_fields(self, request: HttpRequest, obj: ToolConnection | None = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "tenant"] if obj is not None else fields

    def save_model(self, request: HttpRequest, obj: ToolConnection, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if data.get("clear_auth_secret"):
            secret: str | None = ""
        else:
            secret = data.get("new_auth_secret") or None
        saved = services.tool_connection_configure(
            tenant=obj.tenant,
            adapter=obj.adapter,
            base_url=obj.base_url,
            auth_secret=secret,
            timeout_seconds=obj.timeout_seconds,
            allowed_hosts=list(obj.allowed_hosts),
            actor=_operator(request),
            as_operator=True,
        )
        obj.pk = saved.pk  # the admin logs and redirects by the saved row


class ExamplesField(forms.CharField):
    """Example requests one per line (they hold commas, so the array field's comma list will not do)."""

    widget = forms.Textarea(attrs={"rows": 6})

    def prepare_value(self, value: Any) -> Any:
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        return [line.strip() for line in str(value or "").splitlines() if line.strip()]


class TenantToolForm(forms.ModelForm[TenantTool]):
    name = forms.ChoiceField(choices=())
    examples = ExamplesField(
        required=False, help_text="The company's own example requests for this tool, one per line."
    )

    class Meta:
        model = TenantTool
        fields = ["tenant", "name", "enabled", "approval", "examples"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "name" in self.fields:  # read-only once the row exists
            self.fields["name"].choices = [(s.name, s.label or s.name) for s in tool_specs()]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        spec = tool_spec(data.get("name") or (self.instance.name if self.instance.pk else ""))
        if spec is not None and spec.changes_data and data.get("approval") == Approval.NONE:
            self.add_error("approval", "This tool changes data: an agent or the customer must confirm it.")
        return data


@admin.register(TenantTool)
class TenantToolAdmin(admin.ModelAdmin[TenantTool]):
    form = TenantToolForm
    list_display = ["name", "tenant", "enabled", "approval", "updated_at"]
    list_filter = ["name", "enabled", "approval"]
    search_fields = ["name", "tenant__slug", "tenant__name"]
    list_select_related = ["tenant"]

    def get_readonly_fields(self, request: HttpRequest, obj: TenantTool | None = None) -> Any:
        return ["tenant", "name"] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: TenantTool, form: Any, change: bool) -> None:
        saved = services.tool_configure(
            tenant=obj.tenant,
            name=obj.name,
            enabled=obj.enabled,
            approval=obj.approval,
            examples=list(form.cleaned_data.get("examples") or []),
            actor=_operator(request),
            as_operator=True,
        )
        obj.pk = saved.pk


@admin.register(ToolRun)
class ToolRunAdmin(admin.ModelAdmin[ToolRun]):
    """Runs are records: only the services write them."""

    list_display = ["tool", "status", "tenant", "customer", "created_at"]
    list_filter = ["status", "tool"]
    search_fields = ["=id", "customer"]
    list_select_related = ["tenant"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
