from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "apps.messaging"
    label = "messaging"
    verbose_name = "Messaging channel (SMS, WhatsApp-style providers)"

    def ready(self) -> None:
        from apps.messaging.channel import messaging_channel_register

        messaging_channel_register()
