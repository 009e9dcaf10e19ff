from django.urls import path

from apps.dashboard import views

app_name = "dashboard"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("episodes/", views.episodes_page, name="episodes"),
    path("track-record/", views.track_record_page, name="track-record"),
    path("markets/<slug:exchange>/<slug:market>/<str:symbol>/", views.instrument, name="instrument"),
]
