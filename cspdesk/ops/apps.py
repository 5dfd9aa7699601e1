from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "cspdesk.ops"
    label = "ops"
    verbose_name = "Operations"
