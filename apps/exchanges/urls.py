from django.urls import path

from apps.exchanges import views

app_name = "exchanges"
urlpatterns = [
    path("sources/", views.sources, name="sources"),
    path("derivatives/<int:instrument_id>/series.json", views.derivatives_series, name="derivatives-series"),
]
