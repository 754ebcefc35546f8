from django.apps import AppConfig


class TelcoConfig(AppConfig):
    name = "apps.telco"
    label = "telco"
    verbose_name = "Demo business system (Nimbus Telecom)"
