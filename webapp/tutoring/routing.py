"""WebSocket routes of webapp.tutoring: one socket per generation being watched."""

from django.urls import path

from webapp.tutoring.consumers import GenerationConsumer

websocket_urlpatterns = [
    path("ws/generations/<int:generation_id>/", GenerationConsumer.as_asgi()),
]
