from django.apps import AppConfig


class GuardrailsConfig(AppConfig):
    name = "apps.guardrails"
    label = "guardrails"

    def ready(self) -> None:
        from apps.accounts import hooks
        from apps.audit.trail import audit_redactor_register
        from apps.core import health
        from apps.guardrails import pii
        from apps.guardrails.sentiment import SENSITIVE_TOPICS

        hooks.handoff_topics_register(
            hooks.HandoffTopicInfo(key=t.key, label=t.label, description=t.description)
            for t in SENSITIVE_TOPICS
        )

        # Required: with redaction down, nothing may reach the LLM, embeddings or logs, so the product
        # is not ready. The check reports "loading" until the analyzer is in memory (seconds, once per
        # process) and starts that load itself; importing pii here loads neither spaCy nor Presidio.
        health.register("pii", pii.check_pii, required=True)
        # Prose in audit rows' data goes through the same redaction as customers' messages.
        audit_redactor_register(pii.pii_redact)
