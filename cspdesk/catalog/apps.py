from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "cspdesk.catalog"
    label = "catalog"
    verbose_name = "Catalog"
