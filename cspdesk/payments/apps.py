from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "cspdesk.payments"
    label = "payments"
    verbose_name = "Payments and receivables"
