"""The messaging provider's webhooks: inbound messages and delivery statuses, signed per company
(docs/architecture/channels.md, "Worked example: the messaging channel"). Errors follow CONTRACTS.md §1."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import Role
from apps.accounts.selectors import access_tenant
from apps.core.clientip import client_ip_from_request
from apps.core.ratelimit import Limit, rate_limit_check
from apps.messaging import selectors, services
from apps.messaging.models import MessagingChannel
from apps.messaging.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER

SIGNED = [
    OpenApiParameter(
        TIMESTAMP_HEADER, str, OpenApiParameter.HEADER, required=True, description="Unix seconds."
    ),
    OpenApiParameter(
        SIGNATURE_HEADER,
        str,
        OpenApiParameter.HEADER,
        required=True,
        description='Hex HMAC-SHA256 of the timestamp, ".", and the raw body, with the company\'s secret.',
    ),
]


class WebhookApi(APIView):
    """Signed by the provider, not a session: no authentication classes (and so no CSRF), no DRF
    throttle (a provider sends from few addresses); our own limits apply, per address before the
    signature is checked and per company and sender after."""

    authentication_classes: list[type] = []
    permission_classes: list[type] = []
    throttle_classes: list[type] = []
    parser_classes: list[type] = []

    def verified(self, request: Request, slug: str) -> tuple[MessagingChannel, bytes]:
        async_to_sync(rate_limit_check)(
            [Limit("msg-ip", client_ip_from_request(request), settings.MESSAGING_RATE_IP, 60)],
            what="webhooks",
        )
        body = request.body
        channel = services.webhook_verify(
            tenant_slug=slug,
            timestamp=request.headers.get(TIMESTAMP_HEADER, ""),
            signature=request.headers.get(SIGNATURE_HEADER, ""),
            body=body,
        )
        return channel, body


class InboundApi(WebhookApi):
    @extend_schema(
        parameters=SIGNED,
        request=inline_serializer(
            "MessagingInbound",
            {
                "message_id": serializers.CharField(),
                "from": serializers.CharField(),
                "to": serializers.CharField(),
                "text": serializers.CharField(),
                "timestamp": serializers.IntegerField(required=False),
            },
        ),
        responses={
            200: inline_serializer(
                "MessagingInboundStored",
                {"message_id": serializers.UUIDField(), "duplicate": serializers.BooleanField()},
            )
        },
        description="A customer's message from the company's SMS/WhatsApp provider. Stored once per "
        "provider message_id (a repeat answers 200 with duplicate=true); the assistant answers by the "
        "provider's API.",
    )
    def post(self, request: Request, slug: str) -> Response:
        channel, body = self.verified(request, slug)
        message, phone = services.inbound_parse(channel=channel, body=body)
        async_to_sync(rate_limit_check)(
            [
                Limit("msg-tenant", str(channel.tenant_id), settings.MESSAGING_RATE_TENANT, 60),
                Limit(
                    "msg-sender",
                    services.sender_digest(channel.tenant, phone),
                    settings.MESSAGING_RATE_SENDER,
                    60,
                ),
            ]
        )
        result = services.messaging_inbound_receive(channel=channel, message=message, phone=phone)
        payload: dict[str, Any] = {
            "message_id": str(result.receipt.message.id),
            "duplicate": not result.receipt.created,
        }
        return Response(payload, status=200)


class StatusApi(WebhookApi):
    @extend_schema(
        parameters=SIGNED,
        request=inline_serializer(
            "MessagingStatus",
            {
                "message_id": serializers.CharField(help_text="the provider's id, as it answered our send"),
                "status": serializers.ChoiceField(choices=["delivered", "failed"]),
                "error": serializers.CharField(required=False),
            },
        ),
        responses={200: inline_serializer("MessagingStatusRecorded", {"status": serializers.CharField()})},
        description="The provider's delivery report for a message the desk sent.",
    )
    def post(self, request: Request, slug: str) -> Response:
        channel, body = self.verified(request, slug)
        update = services.status_parse(body=body)
        delivery = services.messaging_status_record(channel=channel, update=update)
        return Response({"status": delivery.status}, status=200)


class ChannelBadgesApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("ids", str, description="Conversation ids, comma-separated (at most 200).")
        ],
        responses={
            200: inline_serializer(
                "MessagingBadges",
                {
                    "conversations": inline_serializer(
                        "MessagingBadge",
                        {
                            "conversation_id": serializers.UUIDField(),
                            "channel": serializers.CharField(),
                            "label": serializers.CharField(),
                            "address": serializers.CharField(help_text="masked unless pii_viewer or admin"),
                        },
                        many=True,
                    )
                },
            )
        },
        description="Which of these conversations are on the messaging channel, with the customer's number "
        "(what the console shows in the queue and the conversation header).",
    )
    def get(self, request: Request, slug: str) -> Response:
        user = request.user
        tenant, roles = access_tenant(actor=user, slug=slug, roles=[Role.AGENT])
        ids = [part for part in request.query_params.get("ids", "").split(",") if part.strip()]
        badges = selectors.channel_badges(
            tenant=tenant, conversation_ids=ids, original=bool(roles & {Role.ADMIN, Role.PII_VIEWER})
        )
        return Response({"conversations": [asdict(badge) for badge in badges]})
