"""/api/v1/tenants/<slug>/canaries/ (admins; in the OpenAPI schema): a company's canaries, starting one
(202: it checks the golden answers first), its live indicators, promoting and stopping it. Errors follow
CONTRACTS.md §1: a refused start is a 400, 404 or 409 whose `message` is one sentence."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import Role, Tenant, User
from apps.accounts.selectors import access_tenant
from apps.llm.models import Canary
from apps.releases.canary import canary_cancel, canary_promote, canary_start
from apps.releases.canary_selectors import HISTORY, access_canary, canary_indicators


def _admin(request: Request, slug: str) -> tuple[Tenant, User]:
    tenant, _ = access_tenant(actor=request.user, slug=slug, roles=[Role.ADMIN])
    assert isinstance(request.user, User)
    return tenant, request.user


class CanaryOutput(serializers.Serializer[Canary]):
    id = serializers.UUIDField()
    status = serializers.CharField()
    status_label = serializers.CharField(source="get_status_display")
    candidate_id = serializers.UUIDField()
    candidate_name = serializers.CharField(source="candidate.name")
    current_id = serializers.UUIDField(allow_null=True, help_text="Empty: the desk's configured model.")
    share = serializers.IntegerField(help_text="Percent of new conversations on the candidate.")
    min_conversations = serializers.IntegerField()
    bounds = serializers.DictField(
        child=serializers.FloatField(), help_text="Percentage points per indicator."
    )
    reason = serializers.CharField(help_text="Why it was refused or stopped, one sentence.")
    golden = serializers.DictField(help_text="The golden comparison before it started.")
    indicators = serializers.SerializerMethodField(
        help_text='Both arms: {"current": {...}, "candidate": {...}, "baseline", "at"}; live while running.'
    )
    started_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()

    def get_indicators(self, canary: Canary) -> dict[str, Any]:
        if canary.status == Canary.Status.RUNNING and self.context.get("live"):
            return canary_indicators(canary)
        return dict(canary.indicators or {})


class CanaryInput(serializers.Serializer[Any]):
    """Shapes only: the service checks the values and words each refusal in one sentence."""

    candidate = serializers.CharField(help_text="A model endpoint id (the company's or the operator's).")
    share = serializers.CharField(help_text="1 to 100.")
    min_conversations = serializers.CharField(required=False, default="20")
    bounds = serializers.DictField(
        child=serializers.CharField(allow_blank=True),
        required=False,
        default=dict,
        help_text="abstention, unsupported, error in percentage points (defaults 10, 5, 5).",
    )


REFUSED = OpenApiResponse(
    response=inline_serializer(
        "CanaryRefused",
        {
            "code": serializers.CharField(),
            "message": serializers.CharField(),
            "retryable": serializers.BooleanField(),
        },
    ),
    description="A share outside 1..100, a bound outside 0..100, an endpoint that is not the company's or is "
    "its current model (400/404), or another canary checking or running (409). Nothing was stored.",
)


class CanaryListApi(APIView):
    @extend_schema(responses=CanaryOutput(many=True), summary="The company's canaries, newest first (admins)")
    def get(self, request: Request, slug: str) -> Response:
        tenant, _ = _admin(request, slug)
        rows = Canary.objects.filter(tenant=tenant).select_related("candidate")[:HISTORY]
        return Response(CanaryOutput(rows, many=True).data)  # type: ignore[arg-type]

    @extend_schema(
        request=CanaryInput,
        responses={202: CanaryOutput, 400: REFUSED, 404: REFUSED, 409: REFUSED},
        summary="Start a canary (admins)",
        description="Checks the candidate on the golden answers first (status `checking`); it runs only if "
        "it passes as many as the current model and none the current one passes fails.",
    )
    def post(self, request: Request, slug: str) -> Response:
        tenant, user = _admin(request, slug)
        data = CanaryInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        canary = canary_start(
            tenant=tenant,
            candidate=values["candidate"],
            share=values["share"],
            min_conversations=values["min_conversations"],
            bounds=values["bounds"],
            actor=user,
        )
        return Response(CanaryOutput(canary).data, status=status.HTTP_202_ACCEPTED)


class CanaryApi(APIView):
    @extend_schema(responses=CanaryOutput, summary="A canary with its live indicators (admins)")
    def get(self, request: Request, slug: str, canary_id: str) -> Response:
        tenant, _ = _admin(request, slug)
        canary = access_canary(tenant=tenant, canary_id=canary_id)
        return Response(CanaryOutput(canary, context={"live": True}).data)


class CanaryPromoteApi(APIView):
    @extend_schema(
        request=None,
        responses={200: CanaryOutput, 409: REFUSED},
        summary="Make the candidate the model (admins)",
    )
    def post(self, request: Request, slug: str, canary_id: str) -> Response:
        tenant, user = _admin(request, slug)
        canary = canary_promote(
            tenant=tenant, canary=access_canary(tenant=tenant, canary_id=canary_id), actor=user
        )
        return Response(CanaryOutput(canary).data)


class CanaryStopApi(APIView):
    @extend_schema(
        request=None,
        responses={200: CanaryOutput, 409: REFUSED},
        summary="Stop a canary (admins); its conversations go back to the current model",
    )
    def post(self, request: Request, slug: str, canary_id: str) -> Response:
        tenant, user = _admin(request, slug)
        canary = canary_cancel(
            tenant=tenant, canary=access_canary(tenant=tenant, canary_id=canary_id), actor=user
        )
        return Response(CanaryOutput(canary).data)
