from allauth.account.decorators import secure_admin_login
from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from apps.api.api import api
from apps.health import views as health_views

# The admin signs in through allauth's login page, throttled per account and client IP like every login, rather
# than through its own unthrottled form (allauth's documented way for django.contrib.admin).
admin.site.login = secure_admin_login(admin.site.login)

urlpatterns = [
    path("", include("apps.dashboard.urls")),
    # bars, pressure, episodes, flows, openapi.json and docs; URL names api:bars, api:flows, api:openapi-json ...
    path("api/v1/", api.urls),
    path("healthz", health_views.healthz, name="healthz"),
    path("status/", health_views.status_page, name="status"),
    path("accounts/", include("allauth.urls")),
    path("glossary/", include("apps.glossary.urls")),
    path("flows/", include("apps.flows.urls")),
    path("", include("apps.exchanges.urls")),
    path("watchlists/", include("apps.watchlists.urls")),
    path("alerts/", include("apps.alerts.urls")),
    path(settings.ADMIN_URL, admin.site.urls),
]
