"""WebSocket routes, one list per app, gathered here."""

from webapp.core.routing import websocket_urlpatterns as core_ws
from webapp.registry.routing import websocket_urlpatterns as registry_ws
from webapp.tutoring.routing import websocket_urlpatterns as tutoring_ws

websocket_urlpatterns = [*core_ws, *tutoring_ws, *registry_ws]
