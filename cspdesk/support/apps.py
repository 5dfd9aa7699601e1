from django.apps import AppConfig


class SupportConfig(AppConfig):
    name = "cspdesk.support"
    label = "support"
    verbose_name = "Support desk"
