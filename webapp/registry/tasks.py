"""Celery tasks of the registry: a training job (queue `training`) and an evaluation (`default`).

Each task takes ids and calls one service, imported inside the function; services enqueue the tasks
by name (webapp.core.after_commit.enqueue_on_commit) and never import this module; the
training-job services live in training_jobs/services.py.
`registry.run_training_job` is routed to `training` by settings.CELERY_TASK_ROUTES; everything else
goes to the default queue.
Training tasks rely on acks_late + reject_on_worker_lost (settings): a worker that dies mid-job
leaves the message to be delivered again, and the service resumes from the last checkpoint.
When a worker starts, jobs whose runner died (dead pid on this host, or a stale heartbeat) and
evaluations whose worker died are re-queued, so restarting a crashed worker is enough.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from celery import shared_task
from celery.signals import worker_ready

if TYPE_CHECKING:
    from celery import Task

logger = logging.getLogger(__name__)


@shared_task(
    name="registry.run_training_job",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
)
def run_training_job(self: Task, job_id: int) -> str:
    from webapp.registry.training_jobs.services import JobHeldElsewhere, training_job_run

    try:
        return training_job_run(job_id=job_id)
    except JobHeldElsewhere as exc:
        # Another live run holds the job (a duplicate delivery): look again once it may be gone.
        raise self.retry(countdown=exc.retry_after_seconds, max_retries=20) from exc


@shared_task(name="registry.run_evaluation", acks_late=True)
def run_evaluation(evaluation_id: int) -> str:
    from webapp.registry.models import Evaluation
    from webapp.registry.services import evaluation_run

    evaluation = Evaluation.objects.filter(pk=evaluation_id).first()
    if evaluation is None:
        return "missing"
    return evaluation_run(evaluation=evaluation).status


@worker_ready.connect
def _resume_stalled_work_on_start(sender=None, **kwargs) -> None:
    """A restarted worker picks up the jobs and evaluations its crashed predecessor left running."""
    from webapp.registry.services import evaluation_recover_stalled
    from webapp.registry.training_jobs.services import training_job_recover_stalled

    for what, recover in (
        ("training jobs", training_job_recover_stalled),
        ("evaluations", evaluation_recover_stalled),
    ):
        try:
            recovered = recover()
        except Exception:
            logger.exception("could not recover stalled %s", what)
            continue
        if recovered:
            logger.info("re-queued stalled %s %s", what, recovered)
