from django.apps import AppConfig


class HandoffConfig(AppConfig):
    name = "apps.handoff"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.conversations import hooks
        from apps.handoff import listeners

        hooks.ownership_listener_add(listeners.on_transition)
        hooks.email_listener_add(listeners.on_email_left)
        hooks.rule_check_add(listeners.rule_check)

        from apps.handoff.channel import email_channel_register

        email_channel_register()
