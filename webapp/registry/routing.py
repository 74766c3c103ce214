"""WebSocket routes of webapp.registry: the live feed of a training job."""

from django.urls import path

from webapp.registry.consumers import TrainingJobConsumer

websocket_urlpatterns = [
    path("ws/training-jobs/<int:job_id>/", TrainingJobConsumer.as_asgi()),
]
