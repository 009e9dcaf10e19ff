from django.contrib import admin
from django.urls import include, path

from apps.api import views as api_views
from apps.health import views as health_views

urlpatterns = [
    path("", include("apps.dashboard.urls")),
    path("api/v1/bars", api_views.bars, name="api-bars"),
    path("healthz", health_views.healthz, name="healthz"),
    path("status/", health_views.status_page, name="status"),
    path("admin/", admin.site.urls),
]
