"""Whether a job's run is alive: the heartbeat a running job refreshes from a small thread, and the
test a resume or a duplicate delivery asks (a stale heartbeat, or a dead pid on this very host)."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from webapp.registry.liveness import local_process_state
from webapp.registry.models import TrainingJob

logger = logging.getLogger(__name__)


def heartbeat_seconds() -> float:
    """How often a running job refreshes its heartbeat (settings.TRAINING_HEARTBEAT_SECONDS)."""
    return float(settings.TRAINING_HEARTBEAT_SECONDS)


def stale_after_seconds() -> float:
    """A heartbeat older than this means the run is gone (settings.TRAINING_STALE_SECONDS)."""
    return float(settings.TRAINING_STALE_SECONDS)


def runner_is_alive(job: TrainingJob, *, now: datetime | None = None) -> bool:
    """Whether the run recorded on the job is still alive.

    A heartbeat older than stale_after_seconds() means dead. On this very host the pid is checked
    too, so a run killed a moment ago (SIGKILL, OOM) is known dead at once, without waiting.
    """
    if not job.run_token or job.heartbeat_at is None:
        return False
    now = now or timezone.now()
    if now - job.heartbeat_at > timedelta(seconds=stale_after_seconds()):
        return False
    return local_process_state(job.worker_hostname, job.worker_pid) is not False


class Heartbeat(threading.Thread):
    """Refreshes the job's heartbeat while the trainer works (even inside one long step)."""

    def __init__(self, job_id: int, run_token: str) -> None:
        super().__init__(name=f"training-job-{job_id}-heartbeat", daemon=True)
        self.job_id, self.run_token = job_id, run_token
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(heartbeat_seconds()):
                try:
                    TrainingJob.objects.filter(pk=self.job_id, run_token=self.run_token).update(
                        heartbeat_at=timezone.now()
                    )
                except Exception:  # noqa: BLE001 - try again next beat
                    logger.warning("heartbeat of training job %s failed", self.job_id)
                    close_old_connections()
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=10)
