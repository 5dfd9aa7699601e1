from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "cspdesk.console"
    label = "console"
    verbose_name = "Staff console"
