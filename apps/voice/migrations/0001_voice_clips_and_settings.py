import uuid

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("accounts", "0006_tenant_answer_settings"),
    ]

    operations = [
        migrations.CreateModel(
            name="VoiceClip",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("conversation_id", models.UUIDField(db_index=True)),
                ("visitor_id", models.UUIDField()),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("transcribing", "Transcribing"),
                            ("done", "Done"),
                            ("failed", "Failed"),
                        ],
                        default="pending",
                        max_length=16,
                    ),
                ),
                ("error_code", models.CharField(blank=True, max_length=40)),
                ("error_message", models.CharField(blank=True, max_length=300)),
                ("audio_format", models.CharField(max_length=8)),
                ("size_bytes", models.PositiveIntegerField()),
                ("duration_s", models.FloatField(blank=True, null=True)),
                ("transcript", models.TextField(blank=True)),
                ("transcript_redacted", models.TextField(blank=True)),
                ("engine", models.CharField(blank=True, max_length=80)),
                ("transcribe_seconds", models.FloatField(blank=True, null=True)),
                ("audio", models.BinaryField(blank=True, editable=False, null=True)),
                ("audio_kept", models.BooleanField(default=False)),
                ("audio_deleted_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                (
                    "contact",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="accounts.contact",
                    ),
                ),
                (
                    "tenant",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="accounts.tenant"
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at"],
                "indexes": [
                    models.Index(fields=["tenant", "visitor_id", "-created_at"], name="voiceclip_visitor_idx"),
                    models.Index(
                        condition=models.Q(("audio__isnull", False), ("audio_kept", True)),
                        fields=["tenant", "-created_at"],
                        name="voiceclip_kept_audio_idx",
                    ),
                ],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("status__in", ["pending", "transcribing", "done", "failed"])),
                        name="voiceclip_status_valid",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("audio_format__in", ["wav", "webm", "ogg", "mp4", "mp3"])),
                        name="voiceclip_format_valid",
                    ),
                ],
            },
        ),
        migrations.CreateModel(
            name="VoiceSettings",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("voice_enabled", models.BooleanField(default=True)),
                ("voice_keep_audio", models.BooleanField(default=False)),
                (
                    "tenant",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="voice_settings",
                        to="accounts.tenant",
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "voice settings",
            },
        ),
    ]
