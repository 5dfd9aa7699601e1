from django.apps import AppConfig


class ReconConfig(AppConfig):
    name = "cspdesk.partnercenter.recon"
    label = "recon"
    verbose_name = "Reconciliation imports"
