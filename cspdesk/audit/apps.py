from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "cspdesk.audit"
    label = "audit"
    verbose_name = "Audit log"
