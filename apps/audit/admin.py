"""The audit trail in the Django admin, for platform operators: read only, like the trail itself.

Nobody adds, changes or deletes a row here: a change would break the chain (`manage.py audit_verify`),
and the rows are written only by the actions they record.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin[AuditEvent]):
    list_display = ["at", "tenant", "seq", "actor_kind", "actor_label", "action", "target_type", "target_id"]
    list_filter = ["action", "actor_kind", "tenant"]
    search_fields = ["target_id"]
    list_select_related = ["tenant"]
    ordering = ["-at"]
    date_hierarchy = "at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
