from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from cspdesk.api import api
from cspdesk.portal.views import landing

urlpatterns = [
    path("", landing, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/", include("cspdesk.portal.auth_urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/v1/", api.urls),
    path("console/", include("cspdesk.console.urls")),
    path("portal/", include("cspdesk.portal.urls")),
    path("support/", include("cspdesk.support.urls")),
    path("collections/", include("cspdesk.collections.urls")),
    path("admin/", admin.site.urls),
]
