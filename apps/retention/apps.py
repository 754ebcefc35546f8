from django.apps import AppConfig


class RetentionConfig(AppConfig):
    name = "apps.retention"
    label = "retention"
    verbose_name = "Data retention"

    def ready(self) -> None:
        from apps.accounts import hooks as accounts_hooks
        from apps.retention import selectors

        # Accounts never imports retention: the settings page shows the section registered here.
        accounts_hooks.settings_section_register(
            accounts_hooks.SettingsSection(
                key="retention",
                template="retention/settings_section.html",
                context=selectors.retention_settings_section,
            )
        )
