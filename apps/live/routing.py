from django.urls import path

from apps.live.consumers import BarsConsumer, NotificationsConsumer
from apps.live.flows import FlowsConsumer

websocket_urlpatterns = [
    path("ws/instruments/<int:instrument_id>/", BarsConsumer.as_asgi()),
    path("ws/overview/", BarsConsumer.as_asgi()),
    path("ws/notifications/", NotificationsConsumer.as_asgi()),
    path("ws/flows/", FlowsConsumer.as_asgi()),
]
