from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "apps.conversations"
    label = "conversations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.conversations import hooks
        from apps.conversations.assistant import assistant_cancel_local
        from apps.conversations.tool_services import tool_run_record
        from apps.tools.hooks import run_listener_add

        run_listener_add(tool_run_record)

        from apps.conversations.channels.builtin import builtin_channels_register

        builtin_channels_register()
        hooks.reply_cancel_listener_add(assistant_cancel_local)
