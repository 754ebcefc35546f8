"""REST API for a company's tools: which tools the assistant may use, the business-system connection, and
the runs agents approve or reject (in the OpenAPI schema at /api/schema/).

The connection's secret is write-only: responses say whether one is stored, never what it is. Which hosts
and ports an adapter may reach is the platform operator's choice (Django admin), never a company admin's.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.validators import URLValidator
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import Role, Tenant, User
from apps.accounts.selectors import access_tenant
from apps.core.errors import BadRequest, Unauthorized
from apps.tools import selectors, services
from apps.tools.models import (
    MAX_EXAMPLE_CHARS,
    MAX_TENANT_EXAMPLES,
    AdapterKind,
    Approval,
    RunStatus,
    ToolRun,
)

ADMINS = [Role.ADMIN]
DECIDERS = [Role.AGENT, Role.ADMIN]
MAX_RUNS = 100


def _user(request: Request) -> User:
    if not isinstance(request.user, User):
        raise Unauthorized()
    return request.user


def _tenant(request: Request, slug: str, roles: list[Role]) -> Tenant:
    tenant, _ = access_tenant(actor=_user(request), slug=slug, roles=roles)
    return tenant


class ToolSettingOutput(serializers.Serializer[selectors.ToolSetting]):
    name = serializers.CharField(source="spec.name")
    label = serializers.CharField(source="spec.label")  # type: ignore[assignment]
    description = serializers.CharField(source="spec.description")
    effect = serializers.ChoiceField(source="spec.effect", choices=["read", "change"])
    enabled = serializers.BooleanField()
    approval = serializers.ChoiceField(choices=Approval.choices)
    configured = serializers.BooleanField()
    examples = serializers.ListField(
        child=serializers.CharField(),
        help_text="The company's own example requests for this tool, beside its built-in ones.",
    )


class ToolConnectionOutput(serializers.Serializer[selectors.ConnectionSettings]):
    adapter = serializers.ChoiceField(choices=AdapterKind.choices)
    base_url = serializers.CharField()
    timeout_seconds = serializers.FloatField()
    has_secret = serializers.BooleanField()
    allowed_hosts = serializers.ListField(
        child=serializers.CharField(),
        help_text="Where the base URL may point, set by the platform operator: `host` (its scheme's "
        "default port only: 443 for https), `host:port` or `[IPv6]:port`.",
    )


class ToolSettingsOutput(serializers.Serializer[Any]):
    tools = ToolSettingOutput(many=True)
    connection = ToolConnectionOutput()


class ToolChoiceInput(serializers.Serializer[Any]):
    enabled = serializers.BooleanField()
    approval = serializers.ChoiceField(choices=Approval.choices, required=False)
    examples = serializers.ListField(
        child=serializers.CharField(max_length=MAX_EXAMPLE_CHARS, allow_blank=True),
        max_length=MAX_TENANT_EXAMPLES,
        required=False,
        help_text="How your customers ask for this tool, one request each (omitted: kept). The assistant "
        "matches requests against these and the tool's built-in examples to choose a tool.",
    )


class ToolConnectionInput(serializers.Serializer[Any]):
    adapter = serializers.ChoiceField(choices=AdapterKind.choices)
    base_url = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        default="",
        validators=[URLValidator(schemes=["http", "https"])],
    )
    auth_secret = serializers.CharField(
        max_length=500,
        required=False,
        allow_blank=True,
        allow_null=True,
        write_only=True,
        trim_whitespace=False,
        help_text='Omitted or null keeps the stored secret; "" removes it.',
    )
    timeout_seconds = serializers.FloatField(required=False, default=10.0)


class ToolRunOutput(serializers.Serializer[ToolRun]):
    id = serializers.UUIDField()
    tool = serializers.CharField()
    label = serializers.SerializerMethodField()  # type: ignore[assignment]
    status = serializers.ChoiceField(choices=RunStatus.choices)
    approval = serializers.ChoiceField(choices=Approval.choices)
    proposal = serializers.SerializerMethodField()
    arguments = serializers.JSONField()  # validated and redacted when the call was proposed
    customer = serializers.CharField()
    summary = serializers.CharField()
    error_code = serializers.CharField()
    error_message = serializers.CharField()
    attempts = serializers.IntegerField()
    duration_ms = serializers.IntegerField(allow_null=True)
    conversation_ref = serializers.UUIDField(allow_null=True)
    created_at = serializers.DateTimeField()
    decided_by = serializers.CharField(source="decided_by.username", default=None)
    decided_at = serializers.DateTimeField(allow_null=True)
    decided_by_customer = serializers.BooleanField()

    def get_label(self, run: ToolRun) -> str:
        return selectors.run_label(run)

    def get_proposal(self, run: ToolRun) -> str:
        return selectors.run_proposal(run)


class ToolRunDecisionInput(serializers.Serializer[Any]):
    approve = serializers.BooleanField()
    note = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


def _settings(tenant: Tenant) -> dict[str, Any]:
    return {
        "tools": ToolSettingOutput(selectors.tool_setting_rows(tenant=tenant), many=True).data,  # type: ignore[arg-type]
        "connection": ToolConnectionOutput(selectors.tool_connection_settings(tenant=tenant)).data,
    }


class ToolListApi(APIView):
    @extend_schema(
        responses=ToolSettingsOutput,
        summary="Every tool the assistant could use, the company's choices, and its connection (admins)",
    )
    def get(self, request: Request, slug: str) -> Response:
        tenant = _tenant(request, slug, ADMINS)
        return Response(_settings(tenant))


class ToolDetailApi(APIView):
    @extend_schema(
        request=ToolChoiceInput,
        responses=ToolSettingOutput,
        summary="Enable or disable a tool and choose who approves it (admins)",
        description="A tool that changes data needs `agent` or `customer` approval; without `approval` a "
        "change tool waits for an agent and a read tool runs at once.",
    )
    def put(self, request: Request, slug: str, name: str) -> Response:
        tenant = _tenant(request, slug, ADMINS)
        data = ToolChoiceInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.tool_configure(
            tenant=tenant,
            name=name,
            enabled=data.validated_data["enabled"],
            approval=data.validated_data.get("approval"),
            examples=data.validated_data.get("examples"),
            actor=_user(request),
        )
        row = next(r for r in selectors.tool_setting_rows(tenant=tenant) if r.spec.name == name)
        return Response(ToolSettingOutput(row).data)


class ToolConnectionApi(APIView):
    @extend_schema(
        request=ToolConnectionInput,
        responses=ToolConnectionOutput,
        summary="Connect the company's business system (admins)",
        description="An HTTP base URL must be on a host and port the platform operator allows "
        "(`allowed_hosts`). The secret is write-only.",
    )
    def put(self, request: Request, slug: str) -> Response:
        tenant = _tenant(request, slug, ADMINS)
        data = ToolConnectionInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.tool_connection_configure(
            tenant=tenant,
            adapter=data.validated_data["adapter"],
            base_url=data.validated_data["base_url"],
            auth_secret=data.validated_data.get("auth_secret"),
            timeout_seconds=data.validated_data["timeout_seconds"],
            allowed_hosts=None,  # the operator's list, never the company admin's
            actor=_user(request),
        )
        return Response(ToolConnectionOutput(selectors.tool_connection_settings(tenant=tenant)).data)


class ToolRunListApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=RunStatus.values, description="Only runs in this status."),
            OpenApiParameter("conversation", uuid.UUID, description="Only runs of this conversation."),
        ],
        responses=ToolRunOutput(many=True),
        summary=f"The {MAX_RUNS} newest tool runs (agents and admins)",
    )
    def get(self, request: Request, slug: str) -> Response:
        tenant = _tenant(request, slug, DECIDERS)
        status = request.query_params.get("status") or None
        if status is not None and status not in RunStatus.values:
            raise BadRequest(f"`status` must be one of {', '.join(RunStatus.values)}.")
        conversation = request.query_params.get("conversation") or None
        try:
            conversation_id = uuid.UUID(conversation) if conversation else None
        except ValueError:
            raise BadRequest("`conversation` must be a conversation id (a UUID).") from None
        runs = selectors.tool_runs(tenant=tenant, status=status, conversation_id=conversation_id)[:MAX_RUNS]
        return Response(ToolRunOutput(runs, many=True).data)  # type: ignore[arg-type]


class ToolRunDecisionApi(APIView):
    @extend_schema(
        request=ToolRunDecisionInput,
        responses=ToolRunOutput,
        summary="Approve or reject a run waiting for approval (agents and admins)",
        description="Exactly one decision counts: a run already decided answers 409 `conflict`.",
    )
    def post(self, request: Request, slug: str, run_id: uuid.UUID) -> Response:
        user = _user(request)
        run = selectors.access_tool_run(actor=user, slug=slug, run_id=run_id)
        data = ToolRunDecisionInput(data=request.data)
        data.is_valid(raise_exception=True)
        run = services.tool_run_decide(
            run=run, approve=data.validated_data["approve"], actor=user, note=data.validated_data["note"]
        )
        return Response(ToolRunOutput(run).data)
