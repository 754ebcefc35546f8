"""The erasure API: admins ask for a customer to be erased, then follow the request (erasure.md)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import Role
from apps.accounts.selectors import access_tenant
from apps.core.errors import BadRequest
from apps.erasure import selectors, services
from apps.erasure.models import ErasureRequest, SubjectKind
from apps.erasure.subjects import subject_clean, subject_for_conversation


class ErasureInput(serializers.Serializer[Any]):
    """Exactly one: the customer by kind, or a conversation of theirs (the console's button)."""

    contact = serializers.CharField(max_length=254, required=False)
    visitor = serializers.CharField(max_length=254, required=False)
    address = serializers.CharField(max_length=254, required=False)
    conversation = serializers.CharField(max_length=64, required=False)


class ErasureOutput(serializers.Serializer[ErasureRequest]):
    id = serializers.UUIDField()
    state = serializers.CharField()
    subject_kind = serializers.CharField()
    steps = serializers.ListField(child=serializers.CharField())
    steps_pending = serializers.SerializerMethodField()
    counts = serializers.DictField(child=serializers.IntegerField())
    error = serializers.CharField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_steps_pending(self, request: ErasureRequest) -> list[str]:
        return selectors.erasure_steps_pending(request=request)


class ErasureListApi(APIView):
    @extend_schema(
        request=ErasureInput,
        responses={202: ErasureOutput},
        summary="Erase one customer everywhere (admins); runs in the background",
    )
    def post(self, request: Request, slug: str) -> Response:
        tenant, _ = access_tenant(actor=request.user, slug=slug, roles=[Role.ADMIN])
        data = ErasureInput(data=request.data)
        data.is_valid(raise_exception=True)
        named = {k: v for k, v in data.validated_data.items() if v}
        if len(named) != 1:
            raise BadRequest("Name exactly one of contact, visitor, address or conversation.")
        [(kind, value)] = named.items()
        if kind == "conversation":
            subject = subject_for_conversation(tenant=tenant, conversation_id=value)
        else:
            subject = subject_clean(kind=SubjectKind(kind), value=value)
        erasure = services.customer_erase_request(tenant=tenant, subject=subject, actor=request.user)
        return Response(ErasureOutput(erasure).data, status=status.HTTP_202_ACCEPTED)


class ErasureDetailApi(APIView):
    @extend_schema(responses=ErasureOutput, summary="How far an erasure got: its state, steps and counts")
    def get(self, request: Request, slug: str, erasure_id: str) -> Response:
        tenant, _ = access_tenant(actor=request.user, slug=slug, roles=[Role.ADMIN])
        erasure = selectors.erasure_request_get(tenant=tenant, request_id=erasure_id)
        return Response(ErasureOutput(erasure).data)
