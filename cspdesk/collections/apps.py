from django.apps import AppConfig


class CollectionsConfig(AppConfig):
    name = "cspdesk.collections"
    label = "collections"
    verbose_name = "Collections"
