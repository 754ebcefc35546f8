"""GET/PUT /api/v1/tenants/<slug>/retention/: the company's retention policy (admins only; in the OpenAPI
schema). Errors follow CONTRACTS.md §1; a refused period also names its field under `fields`."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import Role
from apps.accounts.selectors import access_tenant
from apps.retention.models import MAX_DAYS, RetentionPolicy
from apps.retention.policy import PERIODS
from apps.retention.selectors import retention_policy_for
from apps.retention.services import retention_policy_set


def _period_field(name: str, *, required: bool) -> serializers.IntegerField:
    return serializers.IntegerField(
        min_value=1,
        max_value=MAX_DAYS,
        allow_null=True,
        required=required,
        help_text=f"Days; null keeps them forever. {PERIODS[name].help}",
    )


class RetentionPolicyOutput(serializers.Serializer[RetentionPolicy]):
    conversations_days = _period_field("conversations_days", required=True)
    messages_days = _period_field("messages_days", required=True)
    audio_days = _period_field("audio_days", required=True)
    tool_runs_days = _period_field("tool_runs_days", required=True)
    case_files_days = _period_field("case_files_days", required=True)
    traces_days = _period_field("traces_days", required=True)
    knowledge_gaps_days = _period_field("knowledge_gaps_days", required=True)


class RetentionPolicyInput(serializers.Serializer[Any]):
    """Documents the body; the periods are checked by the service, which words each refusal."""

    conversations_days = _period_field("conversations_days", required=False)
    messages_days = _period_field("messages_days", required=False)
    audio_days = _period_field("audio_days", required=False)
    tool_runs_days = _period_field("tool_runs_days", required=False)
    case_files_days = _period_field("case_files_days", required=False)
    traces_days = _period_field("traces_days", required=False)
    knowledge_gaps_days = _period_field("knowledge_gaps_days", required=False)


REFUSED = OpenApiResponse(
    response=inline_serializer(
        "RetentionPolicyRefused",
        {
            "code": serializers.CharField(),
            "message": serializers.CharField(),
            "retryable": serializers.BooleanField(),
            "fields": serializers.DictField(child=serializers.CharField(), help_text="field → sentence"),
        },
    ),
    description="A period is zero, negative, over 3650 days, not a whole number, or not a period at all. "
    "Nothing was changed.",
)


class RetentionPolicyApi(APIView):
    @extend_schema(
        responses=RetentionPolicyOutput,
        summary="How long the company keeps each kind of data (admins)",
    )
    def get(self, request: Request, slug: str) -> Response:
        tenant, _ = access_tenant(actor=request.user, slug=slug, roles=[Role.ADMIN])
        return Response(RetentionPolicyOutput(retention_policy_for(tenant=tenant)).data)

    @extend_schema(
        request=RetentionPolicyInput,
        responses={200: RetentionPolicyOutput, 400: REFUSED},
        summary="Set retention periods (admins); a period not sent stays as it is",
        description="Each period is a whole number of days from 1 to 3650, or null to keep that kind of data "
        "forever. Expired data is removed by the next retention run (hourly by default) and the removal is "
        "recorded in the audit trail; the change itself is audited as settings.retention.",
    )
    def put(self, request: Request, slug: str) -> Response:
        tenant, _ = access_tenant(actor=request.user, slug=slug, roles=[Role.ADMIN])
        body = request.data
        if not isinstance(body, dict):
            raise serializers.ValidationError({"non_field_errors": ["Send a JSON object of periods."]})
        policy = retention_policy_set(tenant=tenant, actor=request.user, values=body)
        return Response(RetentionPolicyOutput(policy).data)
