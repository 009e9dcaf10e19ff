from django.urls import path

from apps.flows import views

app_name = "flows"
urlpatterns = [
    path("", views.page, name="page"),
]
