from typing import Any

from django.apps import AppConfig


class VoiceConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "apps.voice"
    verbose_name = "Voice messages"

    def ready(self) -> None:
        from celery.signals import worker_process_init

        from apps.accounts import hooks as accounts_hooks
        from apps.conversations import hooks as conversations_hooks
        from apps.voice import selectors

        worker_process_init.connect(_warm_up_voice_worker, weak=False)
        # Lower apps never import voice: they ask what it registered here.
        conversations_hooks.session_limits_contributor_add(selectors.voice_session_limits)
        accounts_hooks.settings_section_register(
            accounts_hooks.SettingsSection(
                key="voice", template="voice/settings_section.html", context=selectors.voice_settings_section
            )
        )


def _warm_up_voice_worker(**kwargs: Any) -> None:
    """A worker process of the `voice` queue loads Whisper and redaction as it starts, not when the first
    customer speaks (the first clip otherwise waited 25-40 s on 2 cores)."""
    from helpdesk.celery import app

    if "voice" in set(getattr(app.amqp.queues, "consume_from", None) or ()):
        from apps.voice.engine import engine_warm_up

        engine_warm_up()
