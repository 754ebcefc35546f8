from django.apps import AppConfig


class MemoryConfig(AppConfig):
    name = "apps.memory"
    label = "memory"
    verbose_name = "Customer memory (with consent)"

    def ready(self) -> None:
        from apps.conversations import hooks as conversations_hooks
        from apps.core.erasure_registry import erasure_register
        from apps.memory import selectors, services

        # Conversations never imports memory: it asks what was registered here.
        conversations_hooks.message_stored_listener_add(services.memory_remember)
        conversations_hooks.prompt_memory_provider_add(selectors.memory_for_prompt)
        erasure_register("memory", services.memory_erase)
