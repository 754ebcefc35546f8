from django.apps import AppConfig


class LlmConfig(AppConfig):
    name = "apps.llm"
    label = "llm"

    def ready(self) -> None:
        from apps.core import health
        from apps.llm import clients, embeddings, profiles

        health.register("llm", clients.check_llm)
        health.register("embeddings", embeddings.check_embeddings)
        profiles.register_auto_style()
