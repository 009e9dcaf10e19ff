from django.urls import path

from apps.watchlists import views

app_name = "watchlists"
urlpatterns = [
    path("", views.index, name="index"),
    path("new/", views.create, name="create"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/rename/", views.rename, name="rename"),
    path("<int:pk>/default/", views.make_default, name="default"),
    path("<int:pk>/delete/", views.delete, name="delete"),
    path("items/add/", views.item_add, name="item-add"),
    path("items/<int:pk>/remove/", views.item_remove, name="item-remove"),
    path("items/<int:pk>/move/", views.item_move, name="item-move"),
]
