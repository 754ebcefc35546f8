"""Django admin for platform operators: every company's retention policy. A save goes through the same
service as the settings page, so it is checked the same way and audited with the operator as actor."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.forms import ModelForm
from django.http import HttpRequest

from apps.retention.models import PERIOD_FIELDS, RetentionPolicy
from apps.retention.services import retention_policy_set


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(admin.ModelAdmin[RetentionPolicy]):
    list_display = ["tenant", *PERIOD_FIELDS, "updated_at"]
    list_select_related = ["tenant"]
    search_fields = ["tenant__slug", "tenant__name"]
    fields = ["tenant", *PERIOD_FIELDS]

    def get_readonly_fields(self, request: HttpRequest, obj: RetentionPolicy | None = None) -> list[str]:
        # A policy belongs to one company for good.
        return ["tenant"] if obj is not None else []

    def save_model(
        self, request: HttpRequest, obj: RetentionPolicy, form: ModelForm[Any], change: bool
    ) -> None:
        saved = retention_policy_set(
            tenant=obj.tenant, actor=request.user, values={name: getattr(obj, name) for name in PERIOD_FIELDS}
        )
        obj.pk, obj._state.adding = saved.pk, saved._state.adding
