"""A customer's recorded voice message and its transcript (docs/architecture/voice.md)."""

from __future__ import annotations

from django.db import models

from apps.accounts.models import Contact, TenantScopedModel


class VoiceClip(TenantScopedModel):
    """One upload from the widget. The audio is kept only until it is transcribed, unless the tenant keeps
    audio (then it is listed for retention: `selectors.voice_clips_kept`).

    The clip belongs to the widget session that recorded it (its visitor and the conversation the session
    opens, which is created only by the first typed message, so it is an id here, not a foreign key):
    only that session reads the transcript. The transcript is never sent by itself: the widget puts it in
    the message box, and the customer sends it, corrected or not, as a typed message.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        TRANSCRIBING = "transcribing", "Transcribing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    conversation_id = models.UUIDField(db_index=True)
    visitor_id = models.UUIDField()
    contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.CharField(max_length=300, blank=True)
    audio_format = models.CharField(max_length=8)
    size_bytes = models.PositiveIntegerField()
    # What the container declared at upload, then what the decoder measured.
    duration_s = models.FloatField(null=True, blank=True)
    # The words as heard (shown only to the session that recorded them), and as redacted for everyone else.
    transcript = models.TextField(blank=True)
    transcript_redacted = models.TextField(blank=True)
    engine = models.CharField(max_length=80, blank=True)
    transcribe_seconds = models.FloatField(null=True, blank=True)
    audio = models.BinaryField(null=True, blank=True, editable=False)
    audio_kept = models.BooleanField(default=False)
    audio_deleted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "transcribing", "done", "failed"]),
                name="voiceclip_status_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(audio_format__in=["wav", "webm", "ogg", "mp4", "mp3"]),
                name="voiceclip_format_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "visitor_id", "-created_at"], name="voiceclip_visitor_idx"),
            models.Index(
                fields=["tenant", "-created_at"],
                condition=models.Q(audio_kept=True, audio__isnull=False),
                name="voiceclip_kept_audio_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"voice clip {self.id} ({self.status})"


class VoiceSettings(TenantScopedModel):
    """A company's voice choices. No row means the defaults: voice on, audio deleted once transcribed.

    Kept in this app rather than on Tenant so that voice owns its migration (docs/architecture/voice.md)."""

    tenant = models.OneToOneField("accounts.Tenant", on_delete=models.CASCADE, related_name="voice_settings")
    # The widget offers the microphone; off refuses uploads with a sentence.
    voice_enabled = models.BooleanField(default=True)
    # Keep each recording after it is transcribed (listed for retention); off deletes it at once.
    voice_keep_audio = models.BooleanField(default=False)

    class Meta:
        verbose_name_plural = "voice settings"

    def __str__(self) -> str:
        return f"voice settings of {self.tenant_id}"
