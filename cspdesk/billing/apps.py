from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "cspdesk.billing"
    label = "billing"
    verbose_name = "Billing"
