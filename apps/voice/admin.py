"""Django admin for platform operators: voice clips, with the ones whose audio is kept (the tenant keeps
audio) filterable for retention. Audio bytes and transcripts are not shown in the list."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.voice import services
from apps.voice.models import VoiceClip, VoiceSettings


class AudioStoredFilter(admin.SimpleListFilter):
    title = "audio stored"
    parameter_name = "audio_stored"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[VoiceClip]
    ) -> list[tuple[str, str]]:
        return [("yes", "Kept (retention)"), ("no", "Deleted")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[VoiceClip]) -> QuerySet[VoiceClip]:
        if self.value() == "yes":
            return queryset.filter(audio__isnull=False)
        if self.value() == "no":
            return queryset.filter(audio__isnull=True)
        return queryset


@admin.register(VoiceClip)
class VoiceClipAdmin(admin.ModelAdmin[VoiceClip]):
    list_display = [
        "id",
        "tenant",
        "status",
        "error_code",
        "audio_format",
        "size_bytes",
        "duration_s",
        "audio_kept",
        "audio_deleted_at",
        "created_at",
    ]
    list_filter = [AudioStoredFilter, "audio_kept", "status", "tenant"]
    search_fields = ["id", "conversation_id", "visitor_id"]
    readonly_fields = [
        "tenant",
        "conversation_id",
        "visitor_id",
        "contact",
        "status",
        "error_code",
        "error_message",
        "audio_format",
        "size_bytes",
        "duration_s",
        "transcript_redacted",
        "engine",
        "transcribe_seconds",
        "audio_kept",
        "audio_deleted_at",
        "finished_at",
        "created_at",
    ]
    # The original words may hold personal data: operators read the redacted transcript only.
    exclude = ["transcript", "audio"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[VoiceClip]:
        return super().get_queryset(request).defer("audio", "transcript")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: VoiceClip | None = None) -> bool:
        return False


@admin.register(VoiceSettings)
class VoiceSettingsAdmin(admin.ModelAdmin[VoiceSettings]):
    list_display = ["tenant", "voice_enabled", "voice_keep_audio", "updated_at"]
    list_filter = ["voice_enabled", "voice_keep_audio"]
    autocomplete_fields = ["tenant"]
    fields = ["tenant", "voice_enabled", "voice_keep_audio"]

    def save_model(self, request: HttpRequest, obj: VoiceSettings, form: object, change: bool) -> None:
        saved = services.voice_settings_update(
            tenant=obj.tenant, voice_enabled=obj.voice_enabled, voice_keep_audio=obj.voice_keep_audio
        )
        obj.pk = saved.pk
