from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "cspdesk.tenancy"
    label = "tenancy"
    verbose_name = "Organisations and customers"
