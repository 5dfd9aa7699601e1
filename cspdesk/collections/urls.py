from django.urls import path

from . import views

app_name = "collections"
urlpatterns = [
    path("policy/<int:organisation_id>/", views.organisation_policy, name="organisation_policy"),
    path("policy/<int:organisation_id>/pdf/", views.organisation_policy_pdf, name="organisation_policy_pdf"),
    path("policy/customer/<uuid:tenant_id>/", views.customer_policy, name="customer_policy"),
    path("policy/customer/<uuid:tenant_id>/pdf/", views.customer_policy_pdf, name="customer_policy_pdf"),
]
