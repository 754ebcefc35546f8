"""The widget's memory endpoints: the consent card's answer and the "What we remember" panel.

Authenticated like every widget endpoint (apps.conversations.widget_http.WidgetApi): the session token as
a bearer token, the page's Origin allowed by its company, the session still standing. Whose memory is
taken from the token alone (its contact, or its visitor id), never from the request, so no visitor can
name another's.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apps.conversations.widget_http import WidgetApi
from apps.core.ratelimit import Limit, rate_limit_check
from apps.memory import selectors, services
from apps.memory.subjects import Subject, subject_of_session

REQUESTS_PER_MINUTE = 60

MemoryView = inline_serializer(
    "WidgetMemory",
    {
        "consent": serializers.DictField(),
        "ask": serializers.DictField(),
        "facts": serializers.ListField(child=serializers.DictField()),
    },
)


class ConsentInput(serializers.Serializer[dict[str, Any]]):
    remember = serializers.BooleanField()
    version = serializers.IntegerField(min_value=1)


class WidgetMemoryApi(WidgetApi):
    def options(self, request: Request, *args: Any, **kwargs: Any) -> Response:  # type: ignore[override]
        response = super().options(request, *args, **kwargs)
        if "Access-Control-Allow-Methods" in response:
            response["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
        return response

    def subject(self) -> Subject:
        tenant, claims = self.session()
        async_to_sync(rate_limit_check)(
            [Limit("memory-visitor", f"{tenant.id}:{claims.visitor_id}", REQUESTS_PER_MINUTE, 60)],
            what="requests",
        )
        return subject_of_session(claims)


class MemoryApi(WidgetMemoryApi):
    @extend_schema(
        responses={200: MemoryView},
        description=(
            "This visitor's (or verified customer's) memory: whether they answered the question and how "
            "(`consent.state`: unasked, granted, declined, withdrawn), the question as it is asked now "
            "(`ask`), and the remembered facts with their dates."
        ),
    )
    def get(self, request: Request) -> Response:
        return Response(selectors.memory_render(subject=self.subject()))


class MemoryConsentApi(WidgetMemoryApi):
    @extend_schema(
        request=ConsentInput,
        responses={200: MemoryView},
        description=(
            "The answer to the question (`remember`), for the wording `version` shown. Stored either way, "
            "so it is not asked again; `remember: false` while remembering withdraws the consent and "
            "deletes every fact. A version that is no longer the current one is a 409."
        ),
    )
    def post(self, request: Request) -> Response:
        data = ConsentInput(data=request.data)
        data.is_valid(raise_exception=True)
        subject = self.subject()
        services.memory_consent_answer(
            subject=subject, remember=data.validated_data["remember"], version=data.validated_data["version"]
        )
        return Response(selectors.memory_render(subject=subject))


class MemoryFactsApi(WidgetMemoryApi):
    @extend_schema(
        request=None,
        responses={200: inline_serializer("WidgetMemoryForgotten", {"deleted": serializers.IntegerField()})},
        description="Forget everything: deletes every remembered fact (the consent stays).",
    )
    def delete(self, request: Request) -> Response:
        return Response({"deleted": services.memory_forget_all(subject=self.subject())})


class MemoryFactApi(WidgetMemoryApi):
    @extend_schema(
        request=None,
        responses={204: None},
        description="Deletes one remembered fact; another visitor's or customer's is not found.",
    )
    def delete(self, request: Request, fact_id: str) -> Response:
        subject = self.subject()
        fact = selectors.access_memory_fact(subject=subject, fact_id=fact_id)
        services.memory_fact_delete(subject=subject, fact=fact)
        return Response(status=204)
