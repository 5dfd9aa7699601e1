from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "cspdesk.demo"
    label = "demo"
    verbose_name = "Demo world"
