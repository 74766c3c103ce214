"""WebSocket routes, one list per app, gathered here; any other path is closed as not found."""

from django.urls import re_path

from webapp.core.routing import websocket_urlpatterns as core_ws
from webapp.core.websocket import UnknownRouteConsumer
from webapp.registry.routing import websocket_urlpatterns as registry_ws
from webapp.tutoring.routing import websocket_urlpatterns as tutoring_ws

# The apps' routes, which the tests open one by one (tests/webapp/core/test_websocket.py).
app_websocket_urlpatterns = [*core_ws, *tutoring_ws, *registry_ws]
websocket_urlpatterns = [*app_websocket_urlpatterns, re_path(r"", UnknownRouteConsumer.as_asgi())]
