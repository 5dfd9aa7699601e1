from django.apps import AppConfig


class PartnerCenterConfig(AppConfig):
    name = "cspdesk.partnercenter"
    label = "partnercenter"
    verbose_name = "Partner Center"
