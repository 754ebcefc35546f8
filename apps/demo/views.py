"""The demo's phone (/demo/phone/): write to the demo company by "SMS" and read its answers, through a fake
messaging provider this server plays itself (apps/messaging/demo_phone.py). Development installs only."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt, ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST

from apps.accounts.selectors import tenant_by_slug
from apps.core.errors import BadRequest, HelpdeskError, NotFound
from apps.demo.services import DEMO_SLUG
from apps.messaging import demo_phone
from apps.messaging.models import MessagingChannel
from apps.messaging.selectors import messaging_channel_of

MAX_TEXT = 2000


def _error(error: HelpdeskError) -> JsonResponse:
    return JsonResponse(error.as_payload(), status=error.http_status)


def _channel() -> MessagingChannel:
    """The demo company's channel, or NotFound: off outside DEBUG, and before the demo is loaded."""
    if not settings.DEBUG:
        raise NotFound("The demo phone is only on a development install.")
    tenant = tenant_by_slug(slug=DEMO_SLUG)
    channel = messaging_channel_of(tenant=tenant) if tenant is not None else None
    if channel is None or not channel.enabled:
        raise NotFound(
            "The demo company has no messaging channel: `make run` sets it up (or `manage.py demo_load`)."
        )
    return channel


def _json_body(request: HttpRequest) -> dict[str, Any]:
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        raise BadRequest("The body is not JSON.") from None
    if not isinstance(data, dict):
        raise BadRequest("The body is not a JSON object.")
    return data


@require_GET
@ensure_csrf_cookie
def phone_page(request: HttpRequest) -> HttpResponse:
    channel = _channel()
    return render(
        request,
        "demo/phone.html",
        {
            "tenant_name": channel.tenant.name,
            "company_number": channel.sender_id,
            "phone": demo_phone.DEMO_PHONE,
        },
    )


@require_GET
def phone_messages(request: HttpRequest) -> JsonResponse:
    try:
        channel = _channel()
        return JsonResponse(
            {
                "messages": demo_phone.phone_transcript(
                    tenant=channel.tenant, phone=request.GET.get("phone", "")
                )
            }
        )
    except HelpdeskError as exc:
        return _error(exc)


@require_POST
def phone_send(request: HttpRequest) -> JsonResponse:
    try:
        channel = _channel()
        data = _json_body(request)
        text = str(data.get("text") or "").strip()
        if not text:
            raise BadRequest("Type a message first.")
        if len(text) > MAX_TEXT:
            raise BadRequest(f"Texts are limited to {MAX_TEXT} characters here.")
        sent = demo_phone.phone_send(channel=channel, phone=str(data.get("phone") or ""), text=text)
        return JsonResponse({"message_id": sent.message_id, "duplicate": sent.duplicate})
    except HelpdeskError as exc:
        return _error(exc)


@require_POST
def phone_delivered(request: HttpRequest) -> JsonResponse:
    try:
        channel = _channel()
        ids = _json_body(request).get("ids") or []
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise BadRequest("ids is a list of message ids.")
        return JsonResponse({"reported": demo_phone.phone_delivered(channel=channel, provider_ids=ids)})
    except HelpdeskError as exc:
        return _error(exc)


@csrf_exempt  # the desk's delivery worker calls it with the company's bearer token, not a browser
@require_POST
def provider_messages(request: HttpRequest) -> JsonResponse:
    try:
        channel = _channel()
        provider_id = demo_phone.provider_accept(
            channel=channel, authorization=request.headers.get("Authorization", ""), body=request.body
        )
        return JsonResponse({"message_id": provider_id}, status=201)
    except HelpdeskError as exc:
        return _error(exc)
