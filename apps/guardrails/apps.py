from django.apps import AppConfig


class GuardrailsConfig(AppConfig):
    name = "apps.guardrails"
    label = "guardrails"

    def ready(self) -> None:
        from apps.core import health
        from apps.guardrails import pii

        # Required: with redaction down, nothing may reach the LLM, embeddings or logs, so the product
        # is not ready. The check reports "loading" until the analyzer is in memory (seconds, once per
        # process) and starts that load itself; importing pii here loads neither spaCy nor Presidio.
        health.register("pii", pii.check_pii, required=True)
