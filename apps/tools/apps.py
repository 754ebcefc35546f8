from django.apps import AppConfig


class ToolsConfig(AppConfig):
    name = "apps.tools"
    label = "tools"
    verbose_name = "Tools"

    def ready(self) -> None:
        from django.core import checks

        # The built-in tools register themselves in the registry on import.
        from apps.tools import builtin  # noqa: F401
        from apps.tools.checks import check_tools_allowed_hosts

        checks.register(check_tools_allowed_hosts)
