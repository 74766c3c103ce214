"""Celery tasks of webapp.core."""

import os
import socket

from celery import shared_task

from webapp.core.health import database_health


@shared_task(name="core.worker_self_check")
def worker_self_check() -> dict:
    """Report, from inside a Celery worker, that it can reach the database; used by health tooling
    and by the tests that prove tasks really run in a separate worker process."""
    return {
        "database": database_health()["state"],
        "pid": os.getpid(),
        "host": socket.gethostname(),
    }
