"""WebSocket routes of webapp.core: the echo channel used to check the channel layer end to end."""

from django.urls import path

from webapp.core.consumers import ChannelLayerEchoConsumer

websocket_urlpatterns = [path("ws/echo/", ChannelLayerEchoConsumer.as_asgi())]
