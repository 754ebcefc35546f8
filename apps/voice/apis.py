"""The widget's voice endpoints: upload a recording, poll for its transcript (docs/architecture/voice.md).

Authenticated like every widget API (apps/conversations/apis.py WidgetApi): the session token as a bearer
token, the page's Origin allowed by that token's tenant (CORS for that origin only, no cookies), the session
still standing. Uploads are rate limited per visitor, address and tenant.
"""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from apps.conversations.widget_http import WidgetApi
from apps.core.clientip import client_ip_from_request
from apps.core.ratelimit import Limit, rate_limit_check
from apps.voice import errors, selectors, services

# Multipart framing around the file: a request this much over the cap is refused before it is parsed.
MULTIPART_OVERHEAD = 64 * 1024

ClipStatus = inline_serializer(
    "VoiceClip",
    {
        "id": serializers.UUIDField(),
        "status": serializers.ChoiceField(["pending", "transcribing", "done", "failed"]),
        "transcript": serializers.CharField(allow_null=True),
        "error": serializers.DictField(allow_null=True),
    },
)


class WidgetVoiceApi(WidgetApi):
    """Authenticated exactly as the other widget endpoints (the shared base checks token, origin, session)."""

    def rate_limit(self, limits: list[Limit], *, what: str) -> None:
        async_to_sync(rate_limit_check)(limits, what=what)


class VoiceUploadApi(WidgetVoiceApi):
    parser_classes = [MultiPartParser]

    @extend_schema(
        request={"multipart/form-data": {"type": "object", "properties": {"audio": {"format": "binary"}}}},
        responses={202: ClipStatus},
        description=(
            "A recorded voice message (multipart field `audio`: WAV, WebM, Ogg, MP4/M4A or MP3, at most "
            "VOICE_MAX_BYTES and VOICE_MAX_SECONDS). Transcribed in the background: poll "
            "`GET /api/widget/v1/voice/<id>`. The transcript is never sent by itself."
        ),
    )
    def post(self, request: Request) -> Response:
        tenant, claims = self.session()
        if not selectors.voice_settings_for(tenant=tenant).voice_enabled:
            raise errors.VoiceDisabled()
        ip = client_ip_from_request(request)
        self.rate_limit(
            [
                Limit("voice-visitor", f"{tenant.id}:{claims.visitor_id}", settings.VOICE_RATE_VISITOR, 60),
                Limit("voice-ip", ip, settings.VOICE_RATE_IP, 60),
                Limit("voice-tenant", str(tenant.id), settings.VOICE_RATE_TENANT, 60),
            ],
            what="voice messages",
        )
        # Before the body is parsed: a 20 MB upload is refused on its declared length.
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > settings.VOICE_MAX_BYTES + MULTIPART_OVERHEAD:
            services.voice_size_check(size=declared - MULTIPART_OVERHEAD)
        upload = request.FILES.get("audio")
        if upload is None:
            raise errors.VoiceEmpty("Attach the recording as the multipart field `audio`.")
        services.voice_size_check(size=upload.size or 0)
        clip = services.voice_clip_create(tenant=tenant, claims=claims, data=upload.read())
        return Response({"id": str(clip.id), "status": clip.status}, status=202)


class VoiceClipApi(WidgetVoiceApi):
    @extend_schema(
        responses={200: ClipStatus},
        description=(
            "A voice message of this session: its status, the words heard (to this session only) once "
            "done, or the reason it failed as `{code, message, retryable}`. Any other clip is not found."
        ),
    )
    def get(self, request: Request, clip_id: str) -> Response:
        tenant, claims = self.session()
        # Polled about twice a second while a clip is transcribed: generous, but bounded.
        self.rate_limit(
            [Limit("voice-poll", f"{tenant.id}:{claims.visitor_id}", settings.VOICE_RATE_POLLS, 60)],
            what="status checks",
        )
        clip = selectors.access_voice_clip(tenant=tenant, claims=claims, clip_id=clip_id)
        return Response(selectors.voice_clip_render(clip))
