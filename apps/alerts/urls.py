from django.urls import path

from apps.alerts import views

app_name = "alerts"
urlpatterns = [
    path("", views.index, name="index"),
    path("new/", views.create, name="create"),
    path("<int:pk>/", views.edit, name="edit"),
    path("<int:pk>/delete/", views.delete, name="delete"),
    path("events/<int:pk>/", views.event_detail, name="event"),
    path("test-email/", views.test_email, name="test-email"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
]
