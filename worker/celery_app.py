"""The Celery application, configured from the Django settings (namespace CELERY_).

Queues: `default` (answer checks, imports, evaluations) and `training` (SFT / C3PO jobs, routed in
settings.CELERY_TASK_ROUTES). Start a worker with
`celery -A worker.celery_app worker -Q default,training -c 1`.
"""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("ringtutor")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("default"), Queue("training"))
app.autodiscover_tasks()
