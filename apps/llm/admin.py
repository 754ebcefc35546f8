"""Django admin for platform operators: model profiles, read-only (only `manage.py model_profile` writes)."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.llm.models import ModelProfile


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
