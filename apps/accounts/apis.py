"""The public REST API for tenants and their people (in the OpenAPI schema at /api/schema/)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts import hooks, selectors, services
from apps.accounts.models import AnswerStyle, Membership, Role, Tenant, User


def _actor(request: Request) -> User:
    """The signed-in admin, for the audit trail (access_tenant has turned everyone else away)."""
    assert isinstance(request.user, User)
    return request.user


class TenantOutput(serializers.Serializer[Tenant]):
    slug = serializers.SlugField()
    name = serializers.CharField()
    widget_key = serializers.CharField()
    allowed_origins = serializers.SerializerMethodField()
    roles = serializers.SerializerMethodField()
    abstain_threshold = serializers.FloatField(allow_null=True)
    daily_token_budget = serializers.IntegerField()
    answer_style = serializers.CharField()
    handoff_topics = serializers.ListField(child=serializers.CharField())
    support_email = serializers.CharField()
    email_assistant_enabled = serializers.BooleanField()

    def get_allowed_origins(self, tenant: Tenant) -> list[str]:
        return selectors.tenant_origins(tenant=tenant)

    def get_roles(self, tenant: Tenant) -> list[str]:
        return sorted(self.context["roles"].get(tenant.id, []))


class TenantUpdateInput(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=200, required=False)
    allowed_origins = serializers.ListField(child=serializers.CharField(max_length=255), required=False)
    abstain_threshold = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1)
    daily_token_budget = serializers.IntegerField(required=False, min_value=0)
    answer_style = serializers.ChoiceField(choices=AnswerStyle.choices, required=False)
    handoff_topics = serializers.ListField(child=serializers.CharField(max_length=32), required=False)
    support_email = serializers.EmailField(max_length=254, required=False, allow_blank=True)
    email_assistant_enabled = serializers.BooleanField(required=False)

    def validate_handoff_topics(self, value: list[str]) -> list[str]:
        # Checked here, before any setting is saved, so a bad request changes nothing.
        known = {topic.key for topic in hooks.handoff_topics()}
        unknown = sorted(set(value) - known)
        if unknown:
            raise serializers.ValidationError(f"Unknown sensitive topics: {', '.join(unknown)}.")
        return value


class MembershipOutput(serializers.Serializer[Membership]):
    username = serializers.CharField(source="user.username")
    email = serializers.EmailField(source="user.email")
    role = serializers.CharField()


class TenantListApi(APIView):
    @extend_schema(responses=TenantOutput(many=True), summary="Companies the signed-in user works for")
    def get(self, request: Request) -> Response:
        tenants = list(selectors.tenants_for_user(user=request.user))  # type: ignore[arg-type]
        roles = {t.id: selectors.user_roles(user=request.user, tenant=t) for t in tenants}  # type: ignore[arg-type]
        return Response(TenantOutput(tenants, many=True, context={"roles": roles}).data)  # type: ignore[arg-type]


class TenantDetailApi(APIView):
    @extend_schema(responses=TenantOutput, summary="One company (members only)")
    def get(self, request: Request, slug: str) -> Response:
        tenant, roles = selectors.access_tenant(actor=request.user, slug=slug)
        return Response(TenantOutput(tenant, context={"roles": {tenant.id: roles}}).data)

    @extend_schema(
        request=TenantUpdateInput,
        responses=TenantOutput,
        summary="Rename, set allowed origins, or set the assistant's policy and answer style",
    )
    def patch(self, request: Request, slug: str) -> Response:
        tenant, roles = selectors.access_tenant(actor=request.user, slug=slug, roles=[Role.ADMIN])
        data = TenantUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.tenant_configure(
            tenant=tenant,
            actor=_actor(request),
            name=data.validated_data.get("name"),
            origins=data.validated_data.get("allowed_origins"),
        )
        services.tenant_assistant_configure(
            tenant=tenant,
            actor=_actor(request),
            abstain_threshold=data.validated_data.get("abstain_threshold", ...),
            daily_token_budget=data.validated_data.get("daily_token_budget"),
        )
        services.tenant_answers_configure(
            tenant=tenant,
            actor=_actor(request),
            answer_style=data.validated_data.get("answer_style"),
            handoff_topics=data.validated_data.get("handoff_topics"),
        )
        services.tenant_email_configure(
            tenant=tenant,
            actor=_actor(request),
            support_email=data.validated_data.get("support_email"),
            email_assistant_enabled=data.validated_data.get("email_assistant_enabled"),
        )
        return Response(TenantOutput(tenant, context={"roles": {tenant.id: roles}}).data)


class TenantMembersApi(APIView):
    @extend_schema(
        responses=MembershipOutput(many=True), summary="People of a company and their roles (admins)"
    )
    def get(self, request: Request, slug: str) -> Response:
        tenant, _ = selectors.access_tenant(actor=request.user, slug=slug, roles=[Role.ADMIN])
        memberships = selectors.tenant_memberships(tenant=tenant)
        return Response(MembershipOutput(memberships, many=True).data)  # type: ignore[arg-type]


class TenantSecretRotateApi(APIView):
    @extend_schema(request=None, responses={200: dict}, summary="Issue a new identity secret (admins)")
    def post(self, request: Request, slug: str) -> Response:
        tenant, _ = selectors.access_tenant(actor=request.user, slug=slug, roles=[Role.ADMIN])
        services.tenant_identity_secret_rotate(tenant=tenant, actor=_actor(request))
        return Response({"identity_secret": tenant.identity_secret}, status=status.HTTP_200_OK)
