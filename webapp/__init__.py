"""Ring Tutor's Django project: settings, URL and ASGI wiring, and the apps that make up the site."""

# Load the Celery app with Django (Celery's documented pattern), so that @shared_task functions bind
# to the configured Redis broker however the process started.
from webapp.celery import app as celery_app

__all__ = ["celery_app"]
