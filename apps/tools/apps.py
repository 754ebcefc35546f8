from django.apps import AppConfig


class ToolsConfig(AppConfig):
    name = "apps.tools"
    label = "tools"
    verbose_name = "Tools"

    def ready(self) -> None:
        # The built-in tools register themselves in the registry on import.
        from apps.tools import builtin  # noqa: F401
