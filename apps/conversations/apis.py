"""HTTP endpoints of the widget (cross-origin, token-authenticated) and of staff reading conversations."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from asgiref.sync import async_to_sync
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import Role
from apps.accounts.selectors import access_tenant, tenant_by_widget_key
from apps.conversations import selectors, sessions
from apps.conversations.channels import conversation_deliveries, deliveries_by_message
from apps.conversations.identity import (
    IdentityClaim,
)
from apps.conversations.services import replies_sweep_stale
from apps.conversations.stream import stream_snapshot
from apps.conversations.tool_selectors import conversation_tool_runs
from apps.conversations.turn_trace import turn_waterfall
from apps.conversations.widget import rate_limits_for_session, widget_session_limits
from apps.conversations.widget_http import WidgetApi
from apps.core.clientip import client_ip_from_request
from apps.core.errors import BadRequest, Forbidden, NotFound
from apps.core.ratelimit import rate_limit_check


class SessionInput(serializers.Serializer[dict[str, Any]]):
    widget_key = serializers.CharField(max_length=64)
    token = serializers.CharField(max_length=1024, required=False, allow_null=True, allow_blank=True)
    identity = serializers.JSONField(required=False, allow_null=True)


class WidgetSessionApi(WidgetApi):
    @extend_schema(
        request=SessionInput,
        responses={200: inline_serializer("WidgetSession", {"token": serializers.CharField()})},
        description="Opens or continues a visitor's chat session (docs/architecture/realtime.md).",
    )
    def post(self, request: Request) -> Response:
        data = SessionInput(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = tenant_by_widget_key(widget_key=data.validated_data["widget_key"])
        if tenant is None:
            raise NotFound("This chat widget is not configured.")
        self.allow_origin(tenant)
        # After the origin check, so the widget can read the 429 and tell the visitor when to retry.
        async_to_sync(rate_limit_check)(
            rate_limits_for_session(ip=client_ip_from_request(request)), what="sessions"
        )
        if not request.headers.get("Origin"):
            raise Forbidden("The widget must be loaded from a web page.")
        claim = None
        raw_identity = data.validated_data.get("identity")
        if raw_identity is not None:
            try:
                claim = IdentityClaim.model_validate(raw_identity)
            except ValueError:
                raise BadRequest("identity needs external_id, issued_at and signature.") from None
        session = sessions.widget_session_open(
            tenant=tenant, token=data.validated_data.get("token") or None, claim=claim
        )
        identity: dict[str, Any] = {"status": "verified" if session.claims.verified else "anonymous"}
        if session.identity is not None and session.identity.status == "rejected":
            identity = {"status": "rejected", "reason": session.identity.reason}
        if session.profile_ignored:
            # The name and email were not covered by the signature: kept out of the customer's record.
            identity["profile"] = "ignored_unsigned"
        contact = session.contact
        return Response(
            {
                "token": session.token,
                "conversation_id": str(session.claims.conversation_id),
                "visitor_id": str(session.claims.visitor_id),
                "verified": session.claims.verified,
                # When a verified session must be proved again (unix seconds); null for a guest.
                "expires_at": session.claims.expires_at or None,
                "contact": {"external_id": contact.external_id, "name": contact.name} if contact else None,
                "identity": identity,
                # Signing in closed this browser's guest chat: its messages stay out of the customer's record.
                "notice": "guest_chat_closed" if session.guest_closed else None,
                "tenant": {"name": tenant.name},
                "websocket_path": f"/ws/widget/?key={tenant.widget_key}",
                "limits": widget_session_limits(tenant=tenant),
            }
        )


class WidgetEventsApi(WidgetApi):
    @extend_schema(
        parameters=[OpenApiParameter("after", int, description="Return events with seq greater than this.")],
        responses={200: inline_serializer("WidgetEvents", {"events": serializers.ListField()})},
        description="Stored events of the session's conversation after a seq, and the reply being written.",
    )
    def get(self, request: Request) -> Response:
        tenant, _ = self.session()
        try:
            after = int(request.query_params.get("after", "0"))
        except ValueError:
            raise BadRequest("after must be a whole number.") from None
        if after < 0:
            raise BadRequest("after must not be negative.")
        conversation = self.conversation
        events: list[dict[str, Any]] = []
        snapshot = None
        if conversation is not None:
            replies_sweep_stale(conversation_id=conversation.id)
            events = selectors.events_rendered(tenant=tenant, conversation_id=conversation.id, after=after)
            snapshot = async_to_sync(stream_snapshot)(tenant_id=tenant.id, conversation_id=conversation.id)
        return Response(
            {
                "events": events,
                "last_seq": events[-1]["seq"] if events else after,
                "more": len(events) == selectors.EVENT_PAGE,
                "snapshot": snapshot,
            }
        )


class WidgetSessionEndApi(WidgetApi):
    @extend_schema(
        request=None,
        responses={204: None},
        description=(
            "Ends the visitor's session (`HelpdeskWidget.logout()` on the company's page): a verified "
            "customer is signed out of the widget on every device; a guest's conversation is closed to its "
            "token."
        ),
    )
    def post(self, request: Request) -> Response:
        tenant, claims = self.session()
        sessions.widget_session_end(tenant=tenant, claims=claims)
        return Response(status=204)


class IdentitySignOutInput(serializers.Serializer[dict[str, Any]]):
    widget_key = serializers.CharField(max_length=64)
    external_id = serializers.CharField(max_length=128)
    issued_at = serializers.IntegerField()
    signature = serializers.CharField(max_length=256)


class WidgetIdentitySignOutApi(WidgetApi):
    @extend_schema(
        request=IdentitySignOutInput,
        responses={204: None},
        description=(
            "Called by the company's server (not the browser) when a customer signs out or must be signed "
            "out: ends their widget sessions on every device and refuses identity proofs issued before now. "
            '`signature = hex(HMAC-SHA256(identity_secret, f"revoke\\n{external_id}\\n{issued_at}"))`, '
            "`issued_at` within 5 minutes of now (docs/architecture/realtime.md)."
        ),
    )
    def post(self, request: Request) -> Response:
        data = IdentitySignOutInput(data=request.data)
        data.is_valid(raise_exception=True)
        async_to_sync(rate_limit_check)(
            rate_limits_for_session(ip=client_ip_from_request(request)), what="requests"
        )
        tenant = tenant_by_widget_key(widget_key=data.validated_data["widget_key"])
        if tenant is None:
            raise NotFound("This chat widget is not configured.")
        self.allow_origin(tenant)
        try:
            claim = IdentityClaim(
                external_id=data.validated_data["external_id"],
                issued_at=data.validated_data["issued_at"],
                signature=data.validated_data["signature"],
            )
        except ValueError:
            raise BadRequest("external_id must not contain control characters.") from None
        sessions.identity_sign_out(tenant=tenant, claim=claim)
        return Response(status=204)


class WidgetPassageApi(WidgetApi):
    @extend_schema(
        responses={200: inline_serializer("WidgetPassage", {"text": serializers.CharField()})},
        description="A cited passage of the tenant's published knowledge.",
    )
    def get(self, request: Request, chunk_id: str) -> Response:
        tenant, _ = self.session()
        chunk = selectors.passage_for_visitor(tenant=tenant, chunk_id=chunk_id)
        version = chunk.version
        return Response(
            {
                "chunk_id": str(chunk.id),
                "document_id": str(chunk.document_id),
                "title": chunk.document.title,
                "version": version.number,
                "effective_date": version.effective_date.isoformat() if version.effective_date else None,
                "section": " > ".join(chunk.section_path or []),
                "page": chunk.page,
                "text": chunk.text,
            }
        )


# ---- staff -------------------------------------------------------------------------------------------


class ConversationListApi(APIView):
    @extend_schema(
        responses={200: inline_serializer("ConversationList", {"results": serializers.ListField()})},
        description="The tenant's recent conversations (agents).",
    )
    def get(self, request: Request, slug: str) -> Response:
        tenant, _ = access_tenant(actor=request.user, slug=slug, roles=[Role.AGENT])
        rows = selectors.conversations_recent(tenant=tenant)
        return Response({"results": [selectors.conversation_summary(c) for c in rows]})


class ConversationDetailApi(APIView):
    @extend_schema(
        responses={
            200: inline_serializer(
                "ConversationDetail",
                {"messages": serializers.ListField(), "tool_runs": serializers.ListField()},
            )
        },
        description=(
            "A conversation's messages. Customers' words are redacted unless the reader holds the "
            "pii_viewer role (admins do)."
        ),
    )
    def get(self, request: Request, slug: str, conversation_id: str) -> Response:
        tenant, roles = access_tenant(actor=request.user, slug=slug, roles=[Role.AGENT])
        conversation = selectors.access_conversation(tenant=tenant, conversation_id=conversation_id)
        original = bool(roles & {Role.ADMIN, Role.PII_VIEWER})
        messages = selectors.conversation_messages(conversation=conversation)
        return Response(
            {
                **selectors.conversation_summary(conversation),
                "showing_original_text": original,
                "messages": [selectors.message_render(m, original=original) for m in messages],
                # What the assistant did (or was refused) for this customer, oldest first.
                "tool_runs": conversation_tool_runs(tenant=tenant, conversation_id=conversation.id),
                # How each answer went out on a channel that does not stream, by message id.
                "deliveries": {
                    str(message_id): rows
                    for message_id, rows in deliveries_by_message(
                        message_ids=[m.id for m in messages]
                    ).items()
                },
            }
        )


class MessageTraceApi(APIView):
    @extend_schema(
        responses={
            200: inline_serializer(
                "MessageTrace",
                {
                    "message_id": serializers.UUIDField(),
                    "trace_id": serializers.CharField(help_text="32 hex digits; empty when not traced"),
                    "total_ms": serializers.FloatField(),
                    "stages": serializers.ListField(),
                },
            )
        },
        description=(
            "The waterfall of one assistant reply (agents): each stage of its turn with its start offset "
            "and duration in milliseconds, its status and a few safe attributes (docs/architecture/"
            "tracing.md)."
        ),
    )
    def get(self, request: Request, slug: str, conversation_id: str, message_id: str) -> Response:
        tenant, _ = access_tenant(actor=request.user, slug=slug, roles=[Role.AGENT])
        waterfall = turn_waterfall(tenant=tenant, conversation_id=conversation_id, message_id=message_id)
        return Response(asdict(waterfall))


class ConversationDeliveriesApi(APIView):
    @extend_schema(
        responses={200: inline_serializer("ConversationDeliveries", {"deliveries": serializers.ListField()})},
        description=(
            "How the conversation's answers went out on its channel (email, messaging): one row per message, "
            "with status queued, sent, delivered or failed, the attempts and the last error (agents)."
        ),
    )
    def get(self, request: Request, slug: str, conversation_id: str) -> Response:
        tenant, _ = access_tenant(actor=request.user, slug=slug, roles=[Role.AGENT])
        conversation = selectors.access_conversation(tenant=tenant, conversation_id=conversation_id)
        return Response(
            {
                "channel": conversation.channel,
                "deliveries": conversation_deliveries(conversation=conversation),
            }
        )
