"""/api/v1/tenants/<slug>/model-endpoints/ (admins; in the OpenAPI schema): the endpoints a company may
use, registering its own after a probe, and removing them. The key is accepted, sealed and never returned.
Errors follow CONTRACTS.md §1: a refused registration is a 400 whose `message` is one sentence."""

from __future__ import annotations

import uuid
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import Role, Tenant, User
from apps.accounts.selectors import access_tenant
from apps.llm.endpoint_selectors import access_endpoint, endpoints_for
from apps.llm.endpoints import STYLES, endpoint_delete, endpoint_register
from apps.llm.models import ModelEndpoint


def _admin(request: Request, slug: str) -> tuple[Tenant, User]:
    tenant, _ = access_tenant(actor=request.user, slug=slug, roles=[Role.ADMIN])
    assert isinstance(request.user, User)
    return tenant, request.user


class CheckReportOutput(serializers.Serializer[Any]):
    models = serializers.ListField(child=serializers.CharField(), default=list)
    first_token_ms = serializers.FloatField(allow_null=True, default=None)
    chunks = serializers.IntegerField(default=0)


class ModelEndpointOutput(serializers.Serializer[ModelEndpoint]):
    id = serializers.UUIDField()
    name = serializers.CharField()
    base_url = serializers.CharField()
    model = serializers.CharField()
    style = serializers.ChoiceField(choices=STYLES)  # type: ignore[assignment]  # Field.style is DRF's own
    operator = serializers.SerializerMethodField(
        help_text="Registered by the operator, offered to every company"
    )
    has_key = serializers.SerializerMethodField(help_text="Whether a key is stored (it is never returned)")
    checked_at = serializers.DateTimeField(allow_null=True)
    check_report = CheckReportOutput()
    created_at = serializers.DateTimeField()

    def get_operator(self, endpoint: ModelEndpoint) -> bool:
        return endpoint.tenant_id is None

    def get_has_key(self, endpoint: ModelEndpoint) -> bool:
        return bool(endpoint.api_key_sealed)


class ModelEndpointInput(serializers.Serializer[Any]):
    """Shapes only: the service checks the values and words each refusal in one sentence."""

    name = serializers.CharField(allow_blank=True, trim_whitespace=False)
    base_url = serializers.CharField(allow_blank=True, trim_whitespace=False)
    model = serializers.CharField(allow_blank=True, trim_whitespace=False)
    api_key = serializers.CharField(
        allow_blank=True, required=False, default="", write_only=True, trim_whitespace=False
    )
    style = serializers.CharField(  # type: ignore[assignment]  # Field.style is DRF's own
        required=False, default="auto", help_text="auto, quote or compose"
    )


REFUSED = OpenApiResponse(
    response=inline_serializer(
        "ModelEndpointRefused",
        {
            "code": serializers.CharField(),
            "message": serializers.CharField(),
            "retryable": serializers.BooleanField(),
        },
    ),
    description="The endpoint is unreachable, answers in another format, does not stream, does not serve "
    "the model or rejects the key; or a field is invalid. `message` says which, in one sentence. Nothing "
    "was stored.",
)


class ModelEndpointListApi(APIView):
    @extend_schema(
        responses=ModelEndpointOutput(many=True), summary="Model endpoints the company may use (admins)"
    )
    def get(self, request: Request, slug: str) -> Response:
        tenant, _ = _admin(request, slug)
        return Response(ModelEndpointOutput(endpoints_for(tenant), many=True).data)  # type: ignore[arg-type]

    @extend_schema(
        request=ModelEndpointInput,
        responses={201: ModelEndpointOutput, 400: REFUSED},
        summary="Register an OpenAI-compatible model endpoint (admins); it is probed first",
        description="The desk lists the server's models and asks for a short streamed reply before storing "
        "anything. The key is sealed at rest and never returned. Audited as model_endpoint.register.",
    )
    def post(self, request: Request, slug: str) -> Response:
        tenant, user = _admin(request, slug)
        data = ModelEndpointInput(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = endpoint_register(tenant=tenant, actor=user, **data.validated_data)
        return Response(ModelEndpointOutput(endpoint).data, status=status.HTTP_201_CREATED)


class ModelEndpointApi(APIView):
    @extend_schema(responses=ModelEndpointOutput, summary="One model endpoint the company may use (admins)")
    def get(self, request: Request, slug: str, endpoint_id: uuid.UUID) -> Response:
        tenant, _ = _admin(request, slug)
        return Response(ModelEndpointOutput(access_endpoint(tenant=tenant, endpoint_id=endpoint_id)).data)

    @extend_schema(
        responses={204: None, 400: REFUSED},
        summary="Remove one of the company's model endpoints (admins)",
        description="Refused while a canary refers to it or it is the company's current model; the "
        "operator's endpoints are removed only by the operator (403). Audited as model_endpoint.delete.",
    )
    def delete(self, request: Request, slug: str, endpoint_id: uuid.UUID) -> Response:
        tenant, user = _admin(request, slug)
        endpoint = access_endpoint(tenant=tenant, endpoint_id=endpoint_id)
        endpoint_delete(tenant=tenant, endpoint=endpoint, actor=user)
        return Response(status=status.HTTP_204_NO_CONTENT)
