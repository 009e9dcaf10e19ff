from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from apps.api import views as api_views
from apps.flows import api as flows_api
from apps.health import views as health_views

urlpatterns = [
    path("", include("apps.dashboard.urls")),
    path("api/v1/bars", api_views.bars, name="api-bars"),
    path("api/v1/pressure", api_views.pressure, name="api-pressure"),
    path("api/v1/episodes", api_views.episodes, name="api-episodes"),
    path("api/v1/openapi.json", api_views.openapi, name="api-openapi"),
    path("healthz", health_views.healthz, name="healthz"),
    path("status/", health_views.status_page, name="status"),
    path("accounts/", include("allauth.urls")),
    path("glossary/", include("apps.glossary.urls")),
    path("flows/", include("apps.flows.urls")),
    path("", include("apps.exchanges.urls")),
    path("api/v1/flows", flows_api.flows, name="api-flows"),
    path("watchlists/", include("apps.watchlists.urls")),
    path("alerts/", include("apps.alerts.urls")),
    path(settings.ADMIN_URL, admin.site.urls),
]
