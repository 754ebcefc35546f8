"""`GET /api/v1/tenants/<slug>/audit/`: a company's audit trail for its admins, newest first.

The same filters as the page (apps/accounts/audit_views.py), paged by an opaque cursor over the chain
position (DRF's CursorPagination): a page costs the same at the start and at the end of a long trail,
and rows appended while a client pages through never shift what it sees.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.audit_views import ADMINS, audit_filters_parse
from apps.accounts.selectors import access_tenant
from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_events


class AuditEventOutput(serializers.Serializer[AuditEvent]):
    seq = serializers.IntegerField(help_text="Position in the company's chain, from 1.")
    at = serializers.DateTimeField()
    actor_kind = serializers.ChoiceField(choices=AuditEvent.ActorKind.choices)
    actor_id = serializers.IntegerField(allow_null=True, help_text="The staff member's user id, if any.")
    actor_label = serializers.CharField(help_text="Their username when the row was written.")
    action = serializers.CharField(help_text='Dotted "<area>.<verb>", e.g. handoff.claim.')
    target_type = serializers.CharField()
    target_id = serializers.CharField()
    # A field, not the serializer's `data` (DRF's metaclass moves declared fields off the class).
    data = serializers.JSONField(  # type: ignore[assignment]
        help_text="Ids, counts, reasons and changed field names; never PII."
    )
    trace_id = serializers.CharField()
    prev_hash = serializers.CharField()
    hash = serializers.CharField()


class AuditPageOutput(serializers.Serializer[Any]):
    next = serializers.URLField(allow_null=True, help_text="The next (older) page, or null.")
    previous = serializers.URLField(allow_null=True, help_text="The previous (newer) page, or null.")
    results = AuditEventOutput(many=True)


class AuditCursorPagination(CursorPagination):
    ordering = "-seq"  # unique within a company's chain, and never changes
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


_FILTERS = [
    OpenApiParameter("action", str, required=False, description="Exact action, e.g. handoff.claim."),
    OpenApiParameter(
        "actor_kind", str, required=False, enum=list(AuditEvent.ActorKind.values), description="Who acted."
    ),
    OpenApiParameter("actor", str, required=False, description="A staff member's username."),
    OpenApiParameter("actor_id", int, required=False, description="A staff member's user id."),
    OpenApiParameter("target_id", str, required=False, description="The id of what was acted on."),
    OpenApiParameter(
        "since", str, required=False, description="From this date (UTC, YYYY-MM-DD) or ISO 8601 time."
    ),
    OpenApiParameter(
        "until", str, required=False, description="Up to this date (UTC, included) or before this time."
    ),
    OpenApiParameter("cursor", str, required=False, description="From a previous page's next/previous."),
    OpenApiParameter("page_size", int, required=False, description="1 to 500, default 50."),
]


class AuditEventListApi(APIView):
    pagination_class = AuditCursorPagination

    @extend_schema(
        parameters=_FILTERS,
        responses={200: AuditPageOutput},
        summary="The company's audit trail, newest first (admins)",
        description="Who did what and when: staff actions, guardrail decisions, tool runs and handoffs. "
        "Agents and editors get 403; people of other companies get 404.",
    )
    def get(self, request: Request, slug: str) -> Response:
        tenant, _ = access_tenant(actor=request.user, slug=slug, roles=ADMINS)
        filters = audit_filters_parse(request.query_params)
        rows = audit_events(tenant_id=tenant.pk, **filters.kwargs())
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(AuditEventOutput(page or [], many=True).data)  # type: ignore[arg-type]
