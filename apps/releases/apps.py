from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    name = "apps.releases"
    label = "releases"
    verbose_name = "Golden answers, gated changes and canaries"

    def ready(self) -> None:
        from apps.knowledge.gate import change_gate_set, pending_lister_set
        from apps.releases import gate, gate_tasks  # noqa: F401  (gate_tasks: registers the Celery task)

        change_gate_set(gate.change_request)
        pending_lister_set(gate.changes_pending)

        from apps.conversations import hooks
        from apps.releases import canary, canary_tasks  # noqa: F401  (canary_tasks: registers its tasks)

        hooks.reply_finished_listener_add(canary.canary_reply_finished)
