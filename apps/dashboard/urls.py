from django.urls import path

from apps.dashboard import views

app_name = "dashboard"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("markets/<slug:exchange>/<slug:market>/<str:symbol>/", views.instrument, name="instrument"),
]
