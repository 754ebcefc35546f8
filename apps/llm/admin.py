"""Django admin for platform operators: model profiles, read-only (only `manage.py model_profile` writes),
and the model endpoints the operator offers to every company.

Endpoints are saved through apps/llm/endpoints.py, so the probe, the sealing and the audit row apply here as
on a company's models page. The key is write-only: a password field never filled in, the stored value never
shown. Companies' own endpoints are theirs to manage on their models page and are not listed here.
"""

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from apps.accounts.models import User
from apps.core.errors import BadRequest
from apps.llm.endpoints import (
    STYLES,
    endpoint_api_key,
    endpoint_delete,
    endpoint_fields_clean,
    endpoint_probe,
    endpoint_register,
    endpoint_update,
)
from apps.llm.models import ModelEndpoint, ModelProfile


@admin.register(ModelProfile)
class ModelProfileAdmin(admin.ModelAdmin[ModelProfile]):
    list_display = [
        "model",
        "base_url",
        "measured_at",
        "questions",
        "composed",
        "supported",
        "support_rate",
        "first_token_p50_ms",
        "complete_p50_ms",
        "passes",
    ]
    list_filter = ["passes"]
    search_fields = ["model", "base_url"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ModelEndpointForm(forms.ModelForm[ModelEndpoint]):
    api_key = forms.CharField(
        label="API key",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Sealed at rest and never shown. When changing an endpoint, leave it empty to keep the "
        "stored key; a new key is probed before it is saved.",
    )
    style = forms.ChoiceField(
        choices=[(s, s) for s in STYLES],
        help_text="auto composes only when the model's measured profile (manage.py model_profile) passes.",
    )

    class Meta:
        model = ModelEndpoint
        fields = ["name", "base_url", "model", "style"]  # never api_key_sealed

    def clean(self) -> dict[str, Any]:
        """Probes here too, so a refusal is shown on the form; saving probes again through the service."""
        data = super().clean() or {}
        if self.errors:
            return data
        adding = self.instance._state.adding
        if not adding and not data.get("api_key"):
            return data
        try:
            fields = endpoint_fields_clean(
                name=data.get("name", ""),
                base_url=data["base_url"] if adding else self.instance.base_url,
                model=data["model"] if adding else self.instance.model,
                api_key=data.get("api_key") or (endpoint_api_key(self.instance) if not adding else ""),
                style=data.get("style", "auto"),
            )
            endpoint_probe(fields, company=False)
        except BadRequest as exc:
            raise forms.ValidationError(exc.message) from None
        return data


def _operator(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None


@admin.register(ModelEndpoint)
class ModelEndpointAdmin(admin.ModelAdmin[ModelEndpoint]):
    form = ModelEndpointForm
    list_display = ["name", "model", "base_url", "style", "has_key", "checked_at"]
    search_fields = ["name", "model", "base_url"]
    readonly_fields = ["has_key", "checked_at", "check_report", "created_by", "created_at"]

    @admin.display(boolean=True, description="Key stored")
    def has_key(self, obj: ModelEndpoint) -> bool:
        return bool(obj.api_key_sealed)

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).filter(tenant__isnull=True)

    def get_readonly_fields(self, request: HttpRequest, obj: ModelEndpoint | None = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "base_url", "model"] if obj is not None else fields  # another one: register it

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one at a time, each checked for canaries and current models
        return actions

    def save_model(self, request: HttpRequest, obj: ModelEndpoint, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if change:
            saved = endpoint_update(
                endpoint=ModelEndpoint.objects.get(pk=obj.pk),
                actor=_operator(request),
                name=data["name"],
                style=data["style"],
                api_key=data.get("api_key") or None,
            )
        else:
            saved = endpoint_register(
                tenant=None,
                name=data["name"],
                base_url=data["base_url"],
                model=data["model"],
                api_key=data.get("api_key") or "",
                style=data["style"],
                actor=_operator(request),
            )
        obj.pk = saved.pk  # the admin logs and redirects by the saved row

    def delete_model(self, request: HttpRequest, obj: ModelEndpoint) -> None:
        endpoint_delete(tenant=None, endpoint=obj, actor=_operator(request))
