"""REST API of the human side: the queue, claims and transfers, replies and notes, canned responses,
presence, tickets, company handoff settings, and the inbound email webhook (OpenAPI at /api/schema/).

Agents (and admins) of the tenant only; anyone else gets 404 for another company's data (never 403: its
existence is not theirs to learn). Conflicts (a lost claim, a conversation someone else holds) are 409s.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import asdict
from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import Role, Tenant, User
from apps.accounts.selectors import access_tenant
from apps.conversations.tool_selectors import conversation_tool_runs
from apps.core.errors import BadRequest, Forbidden, Unauthorized
from apps.handoff import contact_timeline, email_path, selectors, services
from apps.handoff.availability import agent_loads, settings_for
from apps.handoff.models import HandoffRule, Presence, Team, Ticket

AGENTS = [Role.AGENT]
ADMINS = [Role.ADMIN]


class HandoffSummaryOutput(serializers.Serializer[Any]):
    """One queue row (selectors.handoff_summary): never the customer's words, those are in the case file."""

    id = serializers.UUIDField()
    conversation_id = serializers.UUIDField()
    status = serializers.CharField(help_text="waiting, claimed, resolved, returned or cancelled")
    conversation_status = serializers.CharField(help_text="assistant, waiting, human or resolved")
    reason = serializers.CharField()
    reason_label = serializers.CharField()
    detail = serializers.CharField()
    priority = serializers.IntegerField(help_text="0 normal, 1 high, 2 urgent, 3 escalated twice")
    escalation_level = serializers.IntegerField()
    team = serializers.CharField(allow_null=True)
    team_id = serializers.UUIDField(allow_null=True)
    agent_id = serializers.IntegerField(allow_null=True)
    agent = serializers.CharField(allow_null=True)
    customer = serializers.CharField()
    verified = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    claimed_at = serializers.DateTimeField(allow_null=True)
    waiting_seconds = serializers.IntegerField()
    offline = serializers.BooleanField(help_text="the customer was told nobody could answer live")
    ticket = serializers.IntegerField(allow_null=True)
    case_file_status = serializers.CharField(help_text="pending, ready or failed")
    last_seq = serializers.IntegerField()


class HandoffDetailOutput(HandoffSummaryOutput):
    case_file = serializers.JSONField()


Summary = HandoffSummaryOutput
Status = inline_serializer("ConversationStatus", {"status": serializers.CharField()})
AGENT_LOAD_FIELDS: dict[str, serializers.Field[Any, Any, Any, Any]] = {
    "user_id": serializers.IntegerField(),
    "name": serializers.CharField(),
    "status": serializers.CharField(help_text="online, away or offline (also when the console is closed)"),
    "holding": serializers.IntegerField(),
    "capacity": serializers.IntegerField(),
}
QueueOutput = inline_serializer(
    "HandoffQueue",
    {
        "waiting": HandoffSummaryOutput(many=True),
        "mine": HandoffSummaryOutput(many=True),
        "others": HandoffSummaryOutput(many=True),
        "agents": inline_serializer("HandoffAgentLoad", AGENT_LOAD_FIELDS, many=True),
        "me": inline_serializer(
            "HandoffMe",
            {
                "user_id": serializers.IntegerField(),
                "status": serializers.CharField(),
                "capacity": serializers.IntegerField(),
                "holding": serializers.IntegerField(),
            },
        ),
        "teams": inline_serializer(
            "HandoffQueueTeam", {"id": serializers.UUIDField(), "name": serializers.CharField()}, many=True
        ),
    },
)


def _user(request: Request) -> User:
    if not isinstance(request.user, User):
        raise Unauthorized()
    return request.user


def _access(request: Request, slug: str, roles: list[Role]) -> tuple[Tenant, set[str]]:
    return access_tenant(actor=_user(request), slug=slug, roles=roles)


def _input(
    serializer_class: type[serializers.Serializer[Any]], request: Request, *, partial: bool = False
) -> dict[str, Any]:
    data = serializer_class(data=request.data, partial=partial)
    data.is_valid(raise_exception=True)
    return dict(data.validated_data)


class QueueApi(APIView):
    @extend_schema(
        operation_id="handoff_queue",
        responses={200: QueueOutput},
        description="The live inbox: waiting handoffs (priority, then waiting time), mine, colleagues', "
        "who is online with how much room, and the teams.",
    )
    def get(self, request: Request, slug: str) -> Response:
        tenant, _ = _access(request, slug, AGENTS)
        user = _user(request)
        loads = agent_loads(tenant=tenant)
        me = next((load for load in loads if load.user_id == user.id), None)
        presence = Presence.objects.for_tenant(tenant).filter(user=user).first()
        return Response(
            {
                **selectors.handoff_queue(tenant=tenant, agent=user),
                "agents": [
                    {
                        "user_id": load.user_id,
                        "name": load.name,
                        "status": load.status,
                        "holding": load.holding,
                        "capacity": load.capacity,
                    }
                    for load in loads
                ],
                "me": {
                    "user_id": user.id,
                    "status": presence.status if presence else Presence.Status.ONLINE,
                    "capacity": me.capacity if me else settings_for(tenant).default_capacity,
                    "holding": me.holding if me else 0,
                },
                "teams": [{"id": str(t.id), "name": t.name} for t in Team.objects.for_tenant(tenant)],
            }
        )


class HandoffDetailApi(APIView):
    @extend_schema(
        operation_id="handoff_retrieve",
        responses={200: HandoffDetailOutput},
        description="One handoff with its case file.",
    )
    def get(self, request: Request, slug: str, handoff_id: uuid.UUID) -> Response:
        tenant, _ = _access(request, slug, AGENTS)
        handoff = selectors.access_handoff(tenant=tenant, handoff_id=handoff_id)
        return Response({**selectors.handoff_summary(handoff), "case_file": handoff.case_file})


class HandoffClaimApi(APIView):
    @extend_schema(
        request=None, responses={200: Summary}, description="Claims a waiting handoff (409 if lost)."
    )
    def post(self, request: Request, slug: str, handoff_id: uuid.UUID) -> Response:
        tenant, _ = _access(request, slug, AGENTS)
        handoff = services.handoff_claim(tenant=tenant, handoff_id=handoff_id, agent=_user(request))
        return Response(selectors.handoff_summary(handoff))


class CaseFileApi(APIView):
    @extend_schema(request=None, responses={202: Summary}, description="Builds the case file again.")
    def post(self, request: Request, slug: str, handoff_id: uuid.UUID) -> Response:
        tenant, _ = _access(request, slug, AGENTS)
        handoff = services.case_file_request(tenant=tenant, handoff_id=handoff_id)
        return Response(selectors.handoff_summary(handoff), status=202)


class TimelineApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("after", int, description="Only events with a greater seq.")],
        responses={200: inline_serializer("StaffTimeline", {"items": serializers.ListField()})},
        description="A conversation as agents see it: events (customer words redacted unless the reader "
        "holds pii_viewer or admin), private notes, tool runs, the latest handoff and its case file.",
    )
    def get(self, request: Request, slug: str, conversation_id: uuid.UUID) -> Response:
        tenant, roles = _access(request, slug, AGENTS)
        try:
            after = int(request.query_params.get("after", "0"))
        except ValueError:
            after = -1
        if after < 0:
            raise BadRequest("after must be a whole number.")
        original = bool(roles & {Role.ADMIN, Role.PII_VIEWER})
        conversation = selectors.access_staff_conversation(tenant=tenant, conversation_id=conversation_id)
        handoff = selectors.latest_handoff(conversation=conversation)
        contact = conversation.contact
        return Response(
            {
                "conversation": {
                    "id": str(conversation.id),
                    "status": conversation.status,
                    "agent_id": conversation.agent_id,
                    "agent": selectors.staff_name(conversation.agent),
                    "episode": conversation.episode,
                    "contact": {
                        "id": str(contact.id),
                        "external_id": contact.external_id,
                        "name": contact.name,
                        "tier": contact.tier,
                    }
                    if contact
                    else None,
                    "contact_email": selectors.email_for_staff(conversation.contact_email, original=original),
                },
                "handoff": selectors.handoff_summary(handoff, conversation=conversation) if handoff else None,
                "case_file": handoff.case_file if handoff else None,
                "items": selectors.staff_timeline(conversation=conversation, roles=roles, after=after),
                "tool_runs": conversation_tool_runs(tenant=tenant, conversation_id=conversation.id),
                "showing_original_text": original,
                "last_seq": conversation.last_seq,
            }
        )


class ContactTimelineApi(APIView):
    @extend_schema(
        responses={200: inline_serializer("ContactTimeline", {"items": serializers.ListField()})},
        description="One verified customer across channels: the messages of all their conversations (widget, "
        "email, messaging) by time, each with its channel. Customer words redacted unless the reader holds "
        "pii_viewer or admin.",
    )
    def get(self, request: Request, slug: str, contact_id: uuid.UUID) -> Response:
        tenant, roles = _access(request, slug, AGENTS)
        original = bool(roles & {Role.ADMIN, Role.PII_VIEWER})
        contact = contact_timeline.access_contact(tenant=tenant, contact_id=contact_id)
        entries = contact_timeline.contact_timeline(tenant=tenant, contact=contact, original=original)
        return Response(
            {
                "contact": {"id": str(contact.id), "external_id": contact.external_id, "name": contact.name},
                "items": [asdict(entry) for entry in entries],
                "showing_original_text": original,
            }
        )


class TakeOverApi(APIView):
    @extend_schema(
        request=None, responses={200: Summary}, description="Takes a conversation from the assistant."
    )
    def post(self, request: Request, slug: str, conversation_id: uuid.UUID) -> Response:
        tenant, _ = _access(request, slug, AGENTS)
        handoff = services.conversation_take_over(
            tenant=tenant, conversation_id=conversation_id, agent=_user(request)
        )
        return Response(selectors.handoff_summary(handoff))


class TransferInput(serializers.Serializer[Any]):
    agent_id = serializers.IntegerField(required=False)
    team_id = serializers.UUIDField(required=False)


class TransferApi(APIView):
    @extend_schema(request=TransferInput, responses={200: Summary}, description="To another agent or a team.")
    def post(self, request: Request, slug: str, conversation_id: uuid.UUID) -> Response:
        tenant, _ = _access(request, slug, AGENTS)
        data = _input(TransferInput, request)
        handoff = services.conversation_transfer(
            tenant=tenant,
            conversation_id=conversation_id,
            actor=_user(request),
            to_agent_id=data.get("agent_id"),
            to_team_id=data.get("team_id"),
        )
        return Response(selectors.handoff_summary(handoff))


class HandBackApi(APIView):
    @extend_schema(
        request=None, responses={200: Status}, description="Gives the conversation back to the assistant."
    )
    def post(self, request: Request, slug: str, conversation_id: uuid.UUID) -> Response:
        tenant, _ = _access(request, slug, AGENTS)
        conversation = services.conversation_hand_back(
            tenant=tenant, conversation_id=conversation_id, actor=_user(request)
        )
        return Response({"status": conversation.status})


class ResolveApi(APIView):
    @extend_schema(
        request=None, responses={200: Status}, description="Resolves; the customer is asked to rate."
    )
    def post(self, request: Request, slug: str, conversation_id: uuid.UUID) -> Response:
        tenant, _ = _access(request, slug, AGENTS)
        conversation = services.conversation_resolve(
            tenant=tenant, conversation_id=conversation_id, actor=_user(request)
        )
        return Response({"status": conversation.status})


class ReplyInput(serializers.Serializer[Any]):
    # Blank and over-long text get the service's own sentence, not a generic field error.
    text = serializers.CharField(
        max_length=services.MAX_REPLY_CHARS + 1000, trim_whitespace=False, allow_blank=True
    )
    client_msg_id = serializers.CharField(max_length=56)


class ReplyApi(APIView):
    @extend_schema(
        request=ReplyInput,
        responses={201: inline_serializer("AgentReply", {"seq": serializers.IntegerField()})},
        description="The owning agent's message to the customer (idempotent on client_msg_id).",
    )
    def post(self, request: Request, slug: str, conversation_id: uuid.UUID) -> Response:
        tenant, roles = _access(request, slug, AGENTS)
        data = _input(ReplyInput, request)
        reply = services.agent_reply(
            tenant=tenant,
            conversation_id=conversation_id,
            agent=_user(request),
            text=data["text"],
            client_msg_id=data["client_msg_id"],
        )
        original = bool(roles & {Role.ADMIN, Role.PII_VIEWER})
        return Response(
            {"message": selectors.staff_message_render(reply.message, original=original), "seq": reply.seq},
            status=201 if reply.created else 200,
        )


class NoteInput(serializers.Serializer[Any]):
    text = serializers.CharField(max_length=services.MAX_NOTE_CHARS + 1000, allow_blank=True)


class NoteApi(APIView):
    @extend_schema(
        request=NoteInput, responses={201: inline_serializer("Note", {"text": serializers.CharField()})}
    )
    def post(self, request: Request, slug: str, conversation_id: uuid.UUID) -> Response:
        tenant, _ = _access(request, slug, AGENTS)
        data = _input(NoteInput, request)
        note = services.note_add(
            tenant=tenant, conversation_id=conversation_id, author=_user(request), text=data["text"]
        )
        return Response(selectors.note_render(note), status=201)


class CannedInput(serializers.Serializer[Any]):
    title = serializers.CharField(max_length=100)
    shortcut = serializers.CharField(max_length=41)
    body = serializers.CharField(max_length=4000)


def _canned(row: Any) -> dict[str, Any]:
    return {"id": str(row.id), "title": row.title, "shortcut": row.shortcut, "body": row.body}


class CannedListApi(APIView):
    @extend_schema(responses={200: inline_serializer("CannedList", {"results": serializers.ListField()})})
    def get(self, request: Request, slug: str) -> Response:
        tenant, _ = _access(request, slug, AGENTS)
        return Response({"results": [_canned(r) for r in selectors.canned_responses(tenant=tenant)]})

    @extend_schema(
        request=CannedInput, responses={201: inline_serializer("Canned", {"id": serializers.UUIDField()})}
    )
    def post(self, request: Request, slug: str) -> Response:
        tenant, _ = _access(request, slug, ADMINS)
        data = _input(CannedInput, request)
        row = services.canned_response_save(tenant=tenant, **data, actor=_user(request))
        return Response(_canned(row), status=201)


class CannedDetailApi(APIView):
    @extend_schema(
        request=CannedInput, responses={200: inline_serializer("CannedOut", {"id": serializers.UUIDField()})}
    )
    def patch(self, request: Request, slug: str, canned_id: uuid.UUID) -> Response:
        tenant, _ = _access(request, slug, ADMINS)
        row = selectors.access_canned_response(tenant=tenant, canned_id=canned_id)
        data = {**_canned(row), **_input(CannedInput, request, partial=True)}
        row = services.canned_response_save(
            tenant=tenant,
            title=data["title"],
            shortcut=data["shortcut"],
            body=data["body"],
            canned=row,
            actor=_user(request),
        )
        return Response(_canned(row))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, slug: str, canned_id: uuid.UUID) -> Response:
        tenant, _ = _access(request, slug, ADMINS)
        services.canned_response_delete(
            canned=selectors.access_canned_response(tenant=tenant, canned_id=canned_id), actor=_user(request)
        )
        return Response(status=204)


class PresenceInput(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=Presence.Status.choices, required=False)
    capacity = serializers.IntegerField(required=False, min_value=1, max_value=20)
    user_id = serializers.IntegerField(required=False)


class PresenceApi(APIView):
    @extend_schema(
        request=PresenceInput,
        responses={200: inline_serializer("Presence", {"status": serializers.CharField()})},
        description="Sets your status (online, away, offline) or, for admins, any agent's capacity.",
    )
    def post(self, request: Request, slug: str) -> Response:
        tenant, roles = _access(request, slug, AGENTS)
        data = _input(PresenceInput, request)
        actor = _user(request)
        target = actor
        if data.get("user_id") not in (None, actor.id):
            if Role.ADMIN not in roles:
                raise Forbidden("Only an admin can change another agent's settings.")
            if "status" in data:
                raise BadRequest("Agents set their own status.")
            # Only the company's agents (and admins) have a capacity; an editor is no such agent.
            target = selectors.access_agent(tenant=tenant, user_id=data["user_id"])
        presence = services.presence_set(
            tenant=tenant, user=target, status=data.get("status"), capacity=data.get("capacity"), actor=actor
        )
        capacity = (
            presence.capacity if presence.capacity is not None else settings_for(tenant).default_capacity
        )
        return Response({"user_id": target.id, "status": presence.status, "capacity": capacity})


class TicketListApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("status", str, description="open, answered or closed")],
        responses={200: inline_serializer("Tickets", {"results": serializers.ListField()})},
    )
    def get(self, request: Request, slug: str) -> Response:
        tenant, roles = _access(request, slug, AGENTS)
        status = request.query_params.get("status") or None
        if status is not None and status not in Ticket.Status.values:
            raise BadRequest("Ticket status is open, answered or closed.")
        rows = selectors.tickets(tenant=tenant, status=status)[:200]
        original = bool(roles & {Role.ADMIN, Role.PII_VIEWER})
        return Response({"results": [selectors.ticket_render(t, original=original) for t in rows]})


class SettingsInput(serializers.Serializer[Any]):
    timezone = serializers.CharField(max_length=64, required=False)
    hours = serializers.JSONField(required=False)
    escalate_after_seconds = serializers.IntegerField(required=False)
    default_capacity = serializers.IntegerField(required=False)


def _settings(tenant: Tenant) -> dict[str, Any]:
    row = settings_for(tenant)
    return {
        "timezone": row.timezone,
        "hours": row.hours,
        "escalate_after_seconds": row.escalate_after_seconds,
        "default_capacity": row.default_capacity,
    }


class HandoffSettingsApi(APIView):
    @extend_schema(
        responses={200: inline_serializer("HandoffSettings", {"timezone": serializers.CharField()})}
    )
    def get(self, request: Request, slug: str) -> Response:
        tenant, _ = _access(request, slug, ADMINS)
        return Response(_settings(tenant))

    @extend_schema(request=SettingsInput, responses={200: inline_serializer("HandoffSettingsOut", {})})
    def put(self, request: Request, slug: str) -> Response:
        tenant, _ = _access(request, slug, ADMINS)
        data = _input(SettingsInput, request)
        services.handoff_settings_update(
            tenant=tenant,
            timezone_name=data.get("timezone"),
            hours=data.get("hours"),
            escalate_after_seconds=data.get("escalate_after_seconds"),
            default_capacity=data.get("default_capacity"),
            actor=_user(request),
        )
        return Response(_settings(tenant))


class RuleInput(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=HandoffRule.Kind.choices)
    value = serializers.CharField(max_length=500, allow_blank=True)
    priority = serializers.IntegerField(required=False, default=0)
    team_id = serializers.UUIDField(required=False, allow_null=True)


def _rule(rule: HandoffRule) -> dict[str, Any]:
    return {
        "id": str(rule.id),
        "kind": rule.kind,
        "value": rule.value,
        "priority": rule.priority,
        "team_id": str(rule.team_id) if rule.team_id else None,
        "enabled": rule.enabled,
    }


class RuleListApi(APIView):
    @extend_schema(responses={200: inline_serializer("Rules", {"results": serializers.ListField()})})
    def get(self, request: Request, slug: str) -> Response:
        tenant, _ = _access(request, slug, ADMINS)
        return Response({"results": [_rule(r) for r in HandoffRule.objects.for_tenant(tenant)]})

    @extend_schema(
        request=RuleInput, responses={201: inline_serializer("Rule", {"id": serializers.UUIDField()})}
    )
    def post(self, request: Request, slug: str) -> Response:
        tenant, _ = _access(request, slug, ADMINS)
        data = _input(RuleInput, request)
        rule = services.handoff_rule_create(tenant=tenant, **data, actor=_user(request))
        return Response(_rule(rule), status=201)


class RuleDetailApi(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, slug: str, rule_id: uuid.UUID) -> Response:
        tenant, _ = _access(request, slug, ADMINS)
        services.handoff_rule_delete(tenant=tenant, rule_id=rule_id, actor=_user(request))
        return Response(status=204)


class TeamInput(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    member_ids = serializers.ListField(child=serializers.IntegerField(), required=False, default=list)


class TeamListApi(APIView):
    @extend_schema(responses={200: inline_serializer("Teams", {"results": serializers.ListField()})})
    def get(self, request: Request, slug: str) -> Response:
        tenant, _ = _access(request, slug, AGENTS)
        teams = Team.objects.for_tenant(tenant).prefetch_related("members")
        return Response(
            {
                "results": [
                    {"id": str(t.id), "name": t.name, "member_ids": [m.id for m in t.members.all()]}
                    for t in teams
                ]
            }
        )

    @extend_schema(
        request=TeamInput, responses={201: inline_serializer("Team", {"id": serializers.UUIDField()})}
    )
    def post(self, request: Request, slug: str) -> Response:
        tenant, _ = _access(request, slug, ADMINS)
        data = _input(TeamInput, request)
        team = services.team_create(
            tenant=tenant, name=data["name"], member_ids=data["member_ids"], actor=_user(request)
        )
        return Response({"id": str(team.id), "name": team.name}, status=201)


class InboundEmailInput(serializers.Serializer[Any]):
    recipient = serializers.CharField(max_length=500)
    sender = serializers.CharField(max_length=500)
    text = serializers.CharField(max_length=200_000)
    message_id = serializers.CharField(max_length=500)
    # Optional: threading, loop protection and the provider's sender checks (docs/architecture/channels.md).
    subject = serializers.CharField(max_length=998, required=False, allow_blank=True, default="")
    in_reply_to = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    references = serializers.CharField(max_length=20_000, required=False, allow_blank=True, default="")
    headers = serializers.DictField(
        child=serializers.CharField(max_length=2000, allow_blank=True), required=False, default=dict
    )
    spf = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
    dkim = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")


class InboundEmailApi(APIView):
    """Your mail provider's inbound webhook: a customer's reply to one of our emails, or mail to a
    company's support address that the assistant answers."""

    authentication_classes: list[type] = []
    permission_classes: list[type] = []
    parser_classes = [JSONParser]

    @extend_schema(
        request=InboundEmailInput,
        responses={
            202: inline_serializer(
                "InboundEmail",
                {"message_id": serializers.UUIDField(allow_null=True), "ignored": serializers.CharField()},
            )
        },
        description="Bearer INBOUND_EMAIL_SECRET. Matches reply+<token>@ to its conversation (only from the "
        "address the customer left), or a company's support address to an email thread the assistant "
        "answers. Automatic mail (Auto-Submitted, Precedence bulk/list/auto_reply, our own) is ignored: "
        "message_id null.",
    )
    def post(self, request: Request) -> Response:
        secret = settings.INBOUND_EMAIL_SECRET
        header = request.headers.get("Authorization", "")
        given = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not secret or not hmac.compare_digest(given.encode(), secret.encode()):
            raise Unauthorized("A valid inbound email secret is required.")
        data = _input(InboundEmailInput, request)
        message = email_path.inbound_email_receive(
            recipient=data["recipient"],
            sender=data["sender"],
            text=data["text"],
            email_id=data["message_id"],
            subject=data["subject"],
            in_reply_to=data["in_reply_to"],
            references=data["references"],
            headers=data["headers"],
            spf=data["spf"],
            dkim=data["dkim"],
        )
        if message is None:
            return Response({"message_id": None, "ignored": "automatic email"}, status=202)
        return Response({"message_id": str(message.id)}, status=202)
