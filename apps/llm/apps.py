from django.apps import AppConfig


class LlmConfig(AppConfig):
    name = "apps.llm"
    label = "llm"

    def ready(self) -> None:
        from apps.core import health
        from apps.llm import clients, embeddings

        health.register("llm", clients.check_llm)
        health.register("embeddings", embeddings.check_embeddings)
