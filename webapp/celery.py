"""The site's Celery application, next to the settings it is configured from (namespace CELERY_).

Celery's Django layout: this module is imported by webapp/__init__.py, and `celery -A webapp` finds
the app here. Queues: `default` (answer checks, imports, evaluations) and `training` (SFT / C3PO
jobs, routed in settings.CELERY_TASK_ROUTES). Start a worker with
`celery -A webapp worker -Q default,training -c 1`.
"""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("ringtutor")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("default"), Queue("training"))
app.autodiscover_tasks()
