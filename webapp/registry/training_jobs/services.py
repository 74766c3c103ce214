"""Writes for training jobs: create (validate and enqueue), cancel, resume, and run one in Celery.

`training_job_run` is what the Celery task calls. It claims the job for this process (a run token,
the worker's host and pid, and a heartbeat refreshed by a small thread, heartbeat.py), and runs
the trainer through the bridge with the job's `JobRecorder` (recorder.py) as its observer. Every
write is fenced by the run token, so a run that was presumed dead and replaced cannot overwrite its
successor. A job whose runner died (SIGKILL, OOM, lost node) is resumed from the last checkpoint in
its output directory: by the broker's redelivery (acks_late + reject_on_worker_lost), by a worker
that starts (tasks.py), or by an admin's "Resume" (training_job_resume).
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from webapp.audit.models import AuditAction
from webapp.audit.services import audit_record
from webapp.core.after_commit import enqueue_on_commit
from webapp.core.errors import ServiceError
from webapp.registry import events
from webapp.registry.liveness import this_host
from webapp.registry.models import (
    TERMINAL_JOB_STATUSES,
    JobStatus,
    ModelVersion,
    TrainingJob,
)
from webapp.registry.selectors import model_version_champion
from webapp.registry.services import evaluation_request
from webapp.registry.training_jobs import bridge
from webapp.registry.training_jobs.catalog import ALGORITHMS, STAGES, total_steps
from webapp.registry.training_jobs.fields import validate_hyperparameters
from webapp.registry.training_jobs.heartbeat import Heartbeat, runner_is_alive, stale_after_seconds
from webapp.registry.training_jobs.plan import check_plan_fits
from webapp.registry.training_jobs.pool import normalise_problem_filter, pool_split
from webapp.registry.training_jobs.recorder import (
    JobRecorder,
    RunSuperseded,
    append_lines,
    send_after_commit,
)

if TYPE_CHECKING:
    from webapp.accounts.models import User

logger = logging.getLogger(__name__)

ACTIVE_STATUSES = {JobStatus.RUNNING, JobStatus.CANCELLING}


def job_output_dir(job: TrainingJob) -> Path:
    """Where the job's stages, checkpoints, TensorBoard logs and published versions go.

    The task id in the name keeps a new job from ever resuming files left by another job that
    had the same id (a database reset with the checkpoint store kept)."""
    return Path(settings.CHECKPOINT_DIR) / "jobs" / f"job-{job.pk}-{job.celery_task_id[:8]}"


class JobHeldElsewhere(Exception):
    """Another live run holds the job; the task retries after `retry_after_seconds`."""

    def __init__(self, job_id: int, retry_after_seconds: float) -> None:
        super().__init__(f"training job {job_id} is held by another live run")
        self.retry_after_seconds = int(retry_after_seconds) + 1


def _enqueue_run(job: TrainingJob) -> None:
    enqueue_on_commit("registry.run_training_job", job.pk, task_id=job.celery_task_id)


@transaction.atomic
def training_job_create(
    *,
    created_by: User | None,
    base_model: ModelVersion,
    stage: str,
    algorithm: str,
    hyperparameters: dict[str, Any],
    problem_filter: dict[str, Any],
) -> TrainingJob:
    """Validate a job against the trainer's defaults and the problem pool, store it, enqueue it."""
    if created_by is None or not getattr(created_by, "is_site_admin", False):
        raise ServiceError("Only site admins launch training jobs.", code="forbidden", status=403)
    if stage not in STAGES:
        raise ServiceError(f"Unknown stage {stage!r}.", code="invalid_stage")
    if algorithm not in ALGORITHMS:
        raise ServiceError(f"Unknown algorithm {algorithm!r}.", code="invalid_algorithm")
    if not Path(base_model.path).exists():
        raise ServiceError(
            f"The checkpoint of {base_model.label} is not on this machine ({base_model.path}).",
            code="missing_checkpoint",
        )
    problem_filter = normalise_problem_filter(problem_filter, stage=stage)
    hyperparameters = validate_hyperparameters(
        stage=stage, algorithm=algorithm, hyperparameters=hyperparameters
    )
    check_plan_fits(base_model_path=base_model.path, hyperparameters=hyperparameters)
    pool = pool_split(problem_filter=problem_filter)
    if not pool.train:
        raise ServiceError(
            "No problem in the training pool matches that choice (problems need a verified "
            "reference answer and must not be excluded by their teacher).",
            code="empty_pool",
        )
    job = TrainingJob.objects.create(
        created_by=created_by,
        base_model=base_model,
        stage=stage,
        algorithm=algorithm,
        hyperparameters=hyperparameters,
        problem_filter=problem_filter,
        total_steps=total_steps(stage=stage, hyperparameters=hyperparameters),
        celery_task_id=uuid.uuid4().hex,
    )
    job.output_dir = str(job_output_dir(job))
    job.save(update_fields=["output_dir"])
    audit_record(
        action=AuditAction.JOB_LAUNCHED,
        actor=created_by,
        target=job,
        details={
            "stage": stage,
            "algorithm": algorithm,
            "base_model": base_model.label,
            "problems": len(pool.train),
            "problem_sets": sorted(pool.sets_used()),
        },
    )
    _enqueue_run(job)
    return job


@transaction.atomic
def training_job_cancel(*, job: TrainingJob, actor: User | None) -> TrainingJob:
    """Ask a job to stop. A queued job is cancelled at once; a running one stops at the end of the
    current step (the trainer checks between steps) and keeps its last checkpoint."""
    job = TrainingJob.objects.select_for_update().get(pk=job.pk)
    if job.status in TERMINAL_JOB_STATUSES:
        raise ServiceError(f"The job has already {job.get_status_display().lower()}.")
    job.cancel_requested = True
    if job.status == JobStatus.QUEUED:
        job.status = JobStatus.CANCELLED
        job.finished_at = timezone.now()
    else:
        job.status = JobStatus.CANCELLING
    cancel_line = f"cancel requested by {actor or 'system'}"
    job.log_tail = append_lines(job.log_tail, [cancel_line])
    job.save(update_fields=["cancel_requested", "status", "finished_at", "log_tail"])
    send_after_commit(job.pk, events.log_event(lines=[cancel_line]))
    audit_record(
        action=AuditAction.JOB_CANCELLED,
        actor=actor,
        target=job,
        details={"status": job.status, "step": job.current_step},
    )
    send_after_commit(job.pk, events.job_status_event(job))
    return job


def training_job_is_stalled(job: TrainingJob) -> bool:
    return job.status in ACTIVE_STATUSES and not runner_is_alive(job)


@transaction.atomic
def training_job_resume(*, job: TrainingJob, actor: User | None) -> TrainingJob:
    """Queue a stalled (runner dead) or failed job again; it continues from its last checkpoint."""
    job = TrainingJob.objects.select_for_update().get(pk=job.pk)
    if job.status in ACTIVE_STATUSES and runner_is_alive(job):
        raise ServiceError("The job is still running.", code="running")
    if job.status not in (ACTIVE_STATUSES | {JobStatus.FAILED}):
        raise ServiceError(
            f"Only a stalled or failed job can be resumed; this one is {job.status}.",
            code="not_resumable",
        )
    cancelling = job.status == JobStatus.CANCELLING
    job.resume_count += 1
    job.status = JobStatus.QUEUED
    job.run_token = ""
    job.error = ""
    job.finished_at = None
    job.celery_task_id = uuid.uuid4().hex
    job.log_tail = append_lines(
        job.log_tail,
        [
            f"resume requested by {actor or 'a starting worker'}"
            + (
                f", from checkpoint step {job.last_checkpoint_step}"
                if job.last_checkpoint_step
                else ""
            )
        ],
    )
    if cancelling:
        # It was being cancelled when its runner died: finish the cancellation instead.
        job.status = JobStatus.CANCELLED
        job.finished_at = timezone.now()
    job.save()
    audit_record(
        action=AuditAction.JOB_RESUMED,
        actor=actor,
        target=job,
        details={
            "by": "admin" if actor is not None else "automatic recovery (runner gone)",
            "from_step": job.last_checkpoint_step,
            "status": job.status,
        },
    )
    if not cancelling:
        _enqueue_run(job)
    send_after_commit(job.pk, events.job_status_event(job))
    return job


def training_job_recover_stalled() -> list[int]:
    """Re-queue every running job whose runner is dead; returns their ids."""
    resumed = []
    for job in TrainingJob.objects.filter(status__in=ACTIVE_STATUSES):
        if not runner_is_alive(job):
            try:
                training_job_resume(job=job, actor=None)
            except ServiceError:
                continue
            resumed.append(job.pk)
    return resumed


@transaction.atomic
def _claim(job_id: int, run_token: str) -> TrainingJob | None:
    """Take the job for this run, or return None when there is nothing to run."""
    job = TrainingJob.objects.select_for_update().filter(pk=job_id).first()
    if job is None or job.status in TERMINAL_JOB_STATUSES:
        return None
    if job.cancel_requested and job.status == JobStatus.QUEUED:
        job.status = JobStatus.CANCELLED
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "finished_at"])
        return None
    takeover = job.status in ACTIVE_STATUSES
    if takeover and runner_is_alive(job):
        raise JobHeldElsewhere(job.pk, stale_after_seconds())
    if takeover:
        job.resume_count += 1
    job.run_token = run_token
    job.worker_hostname = this_host()
    job.worker_pid = os.getpid()
    job.heartbeat_at = timezone.now()
    if job.status != JobStatus.CANCELLING:
        job.status = JobStatus.RUNNING
    job.started_at = job.started_at or timezone.now()
    # Where the run goes on from is the trainer's to say (JobRecorder.resumed): the dead run may
    # have written a checkpoint it was killed before recording. Until then the job shows the
    # last one it recorded.
    recorded = job.last_checkpoint_step or 0
    job.current_step = recorded
    note = (
        f"resuming from the last checkpoint (step {recorded} recorded)"
        if recorded
        else ("resuming (no checkpoint recorded)" if takeover else "started")
    )
    job.log_tail = append_lines(
        job.log_tail, [f"{note} on {job.worker_hostname} (pid {job.worker_pid})"]
    )
    job.save()
    send_after_commit(job.pk, events.job_status_event(job))
    return job


def _finish(job_id: int, run_token: str, *, status: str, error: str = "", line: str = "") -> str:
    """End the job with `status` unless another run took it over; returns what was recorded."""
    with transaction.atomic():
        job = TrainingJob.objects.select_for_update().filter(pk=job_id, run_token=run_token).first()
        if job is None:
            return "superseded"
        job.status = status
        job.error = error
        job.finished_at = timezone.now()
        if line:
            job.log_tail = append_lines(job.log_tail, [line])
        job.save(update_fields=["status", "error", "finished_at", "log_tail"])
        if line:
            # The page's log panel gets the closing line live, as it got every line before it.
            send_after_commit(job.pk, events.log_event(lines=[line]))
        send_after_commit(job.pk, events.job_status_event(job))
        if status == JobStatus.SUCCEEDED and job.result_model is not None:
            # Before and after on the same held-out problems: the result, and the base model
            # (and the champion) unless they were already evaluated on that set.
            protocol = {
                "n_per_level": job.hyperparameters.get("eval_per_level"),
                "max_new_tokens": job.hyperparameters.get("eval_max_new_tokens"),
            }
            evaluation_request(model_version=job.result_model, **protocol)
            champion = model_version_champion()
            for version in {job.base_model} | ({champion} if champion is not None else set()):
                evaluation_request(model_version=version, only_if_missing=True, **protocol)
    return status


def training_job_run(*, job_id: int) -> str:
    """Run (or resume) a training job in this process; returns the job's final status.

    Raises JobHeldElsewhere when another live run holds the job (the task retries later).
    """
    run_token = uuid.uuid4().hex
    job = _claim(job_id, run_token)
    if job is None:
        status = TrainingJob.objects.filter(pk=job_id).values_list("status", flat=True).first()
        return status or "missing"
    recorder = JobRecorder(job)
    heartbeat = Heartbeat(job.pk, run_token)
    heartbeat.start()
    try:
        bridge.run_training(job=job, recorder=recorder)
    except RunSuperseded as exc:
        logger.warning("%s", exc)
        return "superseded"
    except ServiceError as exc:
        return _finish(
            job.pk, run_token, status=JobStatus.FAILED, error=exc.message, line=exc.message
        )
    except Exception as exc:
        logger.exception("training job %s failed", job.pk)
        message = f"{type(exc).__name__}: {exc}"[:2000]
        return _finish(job.pk, run_token, status=JobStatus.FAILED, error=message, line="failed")
    finally:
        heartbeat.stop()
    job.refresh_from_db()
    if job.cancel_requested:
        return _finish(job.pk, run_token, status=JobStatus.CANCELLED, line="cancelled")
    # (A run that stopped because another run took the job over finds its token gone here.)
    return _finish(job.pk, run_token, status=JobStatus.SUCCEEDED, line="finished")
