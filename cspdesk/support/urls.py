from django.urls import path

from . import views

app_name = "support"
urlpatterns = [path("offering/<int:organisation_id>/", views.offering, name="offering")]
