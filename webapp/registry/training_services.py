"""Writes for training jobs: create (validate and enqueue), cancel, resume, and run one in Celery.

`training_job_run` is what the Celery task calls. It claims the job for this process (a run token,
the worker's host and pid, and a heartbeat refreshed by a small thread), builds the trainer's spec
from the site's problem pool, and calls the trainer (training.c3po, through training_bridge) with a
`JobRecorder`: the callbacks that store one TrainingMetric per step, sample completions and the log
tail, register every checkpoint as a candidate ModelVersion, send live events to the job's group
after each commit, and tell the trainer to stop when an admin asked to cancel. Every write is
fenced by the run token, so a run that was presumed dead and replaced cannot overwrite its
successor. A job whose runner died (SIGKILL, OOM, lost node) is resumed from the last checkpoint in
its output directory: by the broker's redelivery (acks_late + reject_on_worker_lost), by a worker
that starts (tasks.py), or by an admin's "Resume" (training_job_resume).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from webapp.audit.models import AuditAction
from webapp.audit.services import audit_record
from webapp.core.errors import ServiceError
from webapp.registry import events
from webapp.registry.liveness import local_process_state, this_host
from webapp.registry.models import (
    JobStatus,
    ModelVersion,
    TrainingJob,
    TrainingMetric,
    TrainingSample,
)
from webapp.registry.selectors import model_version_champion
from webapp.registry.services import evaluation_request, model_version_register

logger = logging.getLogger(__name__)

TERMINAL_STATUSES = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}
ACTIVE_STATUSES = {JobStatus.RUNNING, JobStatus.CANCELLING}
LOG_TAIL_LINES = 200
SAMPLES_KEPT_PER_STEP = 64
SAMPLES_SENT_PER_STEP = 4


def heartbeat_seconds() -> float:
    """How often a running job refreshes its heartbeat (settings.TRAINING_HEARTBEAT_SECONDS)."""
    return float(settings.TRAINING_HEARTBEAT_SECONDS)


def stale_after_seconds() -> float:
    """A heartbeat older than this means the run is gone (settings.TRAINING_STALE_SECONDS)."""
    return float(settings.TRAINING_STALE_SECONDS)


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


class RunSuperseded(Exception):
    """This run's token no longer matches the job's: another run took the job over."""


def _send_after_commit(job_id: int, event: dict[str, Any]) -> None:
    group = events.training_job_group_name(job_id)

    def send() -> None:
        try:
            async_to_sync(get_channel_layer().group_send)(group, event)
        except Exception:  # noqa: BLE001 - a live view missing an event must not stop training
            logger.warning("could not send %s event for job %s", event["type"], job_id)

    transaction.on_commit(send)


def runner_is_alive(job: TrainingJob, *, now=None) -> bool:
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


def _enqueue_run(job: TrainingJob) -> None:
    from webapp.registry.tasks import training_job_run_task

    job_id, task_id = job.pk, job.celery_task_id
    transaction.on_commit(lambda: training_job_run_task.apply_async(args=[job_id], task_id=task_id))


@transaction.atomic
def training_job_create(
    *,
    created_by,
    base_model: ModelVersion,
    stage: str,
    algorithm: str,
    hyperparameters: dict[str, Any],
    problem_filter: dict[str, Any],
) -> TrainingJob:
    """Validate a job against the trainer's defaults and the problem pool, store it, enqueue it."""
    from webapp.registry import training_bridge

    if created_by is None or not getattr(created_by, "is_site_admin", False):
        raise ServiceError("Only site admins launch training jobs.", code="forbidden", status=403)
    if stage not in training_bridge.STAGES:
        raise ServiceError(f"Unknown stage {stage!r}.", code="invalid_stage")
    if algorithm not in training_bridge.ALGORITHMS:
        raise ServiceError(f"Unknown algorithm {algorithm!r}.", code="invalid_algorithm")
    if not Path(base_model.path).exists():
        raise ServiceError(
            f"The checkpoint of {base_model.label} is not on this machine ({base_model.path}).",
            code="missing_checkpoint",
        )
    problem_filter = training_bridge.normalise_problem_filter(problem_filter, stage=stage)
    hyperparameters = training_bridge.validate_hyperparameters(
        stage=stage, algorithm=algorithm, hyperparameters=hyperparameters
    )
    training_bridge.check_plan_fits(
        base_model_path=base_model.path, hyperparameters=hyperparameters
    )
    pool = training_bridge.pool_split(problem_filter=problem_filter)
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
        total_steps=training_bridge.total_steps(stage=stage, hyperparameters=hyperparameters),
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
def training_job_cancel(*, job: TrainingJob, actor) -> TrainingJob:
    """Ask a job to stop. A queued job is cancelled at once; a running one stops at the end of the
    current step (the trainer checks between steps) and keeps its last checkpoint."""
    job = TrainingJob.objects.select_for_update().get(pk=job.pk)
    if job.status in TERMINAL_STATUSES:
        raise ServiceError(f"The job has already {job.get_status_display().lower()}.")
    job.cancel_requested = True
    if job.status == JobStatus.QUEUED:
        job.status = JobStatus.CANCELLED
        job.finished_at = timezone.now()
    else:
        job.status = JobStatus.CANCELLING
    cancel_line = f"cancel requested by {actor or 'system'}"
    job.log_tail = _append_lines(job.log_tail, [cancel_line])
    job.save(update_fields=["cancel_requested", "status", "finished_at", "log_tail"])
    _send_after_commit(job.pk, events.log_event(lines=[cancel_line]))
    audit_record(
        action=AuditAction.JOB_CANCELLED,
        actor=actor,
        target=job,
        details={"status": job.status, "step": job.current_step},
    )
    _send_after_commit(job.pk, events.job_status_event(job))
    return job


def training_job_is_stalled(job: TrainingJob) -> bool:
    return job.status in ACTIVE_STATUSES and not runner_is_alive(job)


@transaction.atomic
def training_job_resume(*, job: TrainingJob, actor) -> TrainingJob:
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
    job.log_tail = _append_lines(
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
    _send_after_commit(job.pk, events.job_status_event(job))
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


def _append_lines(tail: str, lines: list[str]) -> str:
    stamped = [f"{timezone.now():%H:%M:%S} {line}" for line in lines]
    kept = (tail.splitlines() + stamped)[-LOG_TAIL_LINES:]
    return "\n".join(kept)


@transaction.atomic
def _claim(job_id: int, run_token: str) -> TrainingJob | None:
    """Take the job for this run, or return None when there is nothing to run."""
    job = TrainingJob.objects.select_for_update().filter(pk=job_id).first()
    if job is None or job.status in TERMINAL_STATUSES:
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
    resume_from = job.last_checkpoint_step or 0
    # Steps after the last checkpoint are trained again: drop what the dead run stored for them.
    TrainingMetric.objects.filter(job=job, step__gt=resume_from).delete()
    TrainingSample.objects.filter(job=job, step__gt=resume_from).delete()
    job.current_step = resume_from
    note = (
        f"resuming from checkpoint step {resume_from}"
        if resume_from
        else ("restarting from the base model" if takeover else "started")
    )
    job.log_tail = _append_lines(
        job.log_tail, [f"{note} on {job.worker_hostname} (pid {job.worker_pid})"]
    )
    job.save()
    _send_after_commit(job.pk, events.job_status_event(job))
    return job


class _Heartbeat(threading.Thread):
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


class JobRecorder:
    """The trainer's callbacks, bound to one run of one job.

    Each callback writes in its own short transaction fenced by the run token (raising
    RunSuperseded if another run took over) and sends its live event after the commit.
    """

    def __init__(self, job: TrainingJob) -> None:
        self.job_id = job.pk
        self.run_token = job.run_token
        self.base_model = job.base_model
        self.label_prefix = f"{job.base_model.label[:60]}-job{job.pk}"
        self.latest_version: ModelVersion | None = job.result_model
        self.steps_done = job.current_step

    def _fenced(self):
        return TrainingJob.objects.select_for_update().filter(
            pk=self.job_id, run_token=self.run_token
        )

    def _locked_job(self) -> TrainingJob:
        job = self._fenced().first()
        if job is None:
            raise RunSuperseded(f"job {self.job_id} was taken over by another run")
        return job

    def step_finished(self, step: int, metrics: dict[str, Any]) -> None:
        clean = {k: _json_number(v) for k, v in metrics.items() if _json_number(v) is not None}
        with transaction.atomic():
            job = self._locked_job()
            TrainingMetric.objects.update_or_create(job=job, step=step, defaults={"metrics": clean})
            job.current_step = max(job.current_step, step)
            job.heartbeat_at = timezone.now()
            job.save(update_fields=["current_step", "heartbeat_at"])
            _send_after_commit(job.pk, events.metric_event(step=step, metrics=clean))
            _send_after_commit(job.pk, events.job_status_event(job))
        self.steps_done = step

    def samples_taken(self, step: int, samples: list[dict[str, Any]]) -> None:
        rows = [
            TrainingSample(
                job_id=self.job_id,
                step=step,
                prompt=str(s.get("statement") or s.get("prompt") or "")[:4000],
                completion=str(s.get("completion", ""))[:8000],
                reward=float(s.get("reward", 0.0)),
            )
            for s in samples[:SAMPLES_KEPT_PER_STEP]
        ]
        if not rows:
            return
        with transaction.atomic():
            self._locked_job()
            TrainingSample.objects.bulk_create(rows)
            _send_after_commit(
                self.job_id,
                events.samples_event(step=step, samples=rows[:SAMPLES_SENT_PER_STEP]),
            )

    def log(self, *lines: str) -> None:
        lines = [line.rstrip() for line in lines if line and line.strip()]
        if not lines:
            return
        with transaction.atomic():
            job = self._locked_job()
            job.log_tail = _append_lines(job.log_tail, lines)
            job.save(update_fields=["log_tail"])
            _send_after_commit(job.pk, events.log_event(lines=lines))

    def record_spec(self, spec: dict[str, Any]) -> None:
        """Keep what the trainer was given on the job (reused as-is when the job resumes)."""
        with transaction.atomic():
            job = self._locked_job()
            job.spec = spec
            job.save(update_fields=["spec"])

    def should_stop(self) -> bool:
        """True once an admin asked to cancel, or when another run took the job over."""
        row = (
            TrainingJob.objects.filter(pk=self.job_id)
            .values_list("cancel_requested", "run_token")
            .first()
        )
        return row is None or row[0] or row[1] != self.run_token

    def checkpoint_written(self, step: int, path: str, manifest: dict[str, Any]) -> ModelVersion:
        with transaction.atomic():
            job = self._locked_job()
            version = model_version_register(
                path=str(path),
                label=f"{self.label_prefix}-step{step}",
                parent=self.base_model,
                training_job=job,
                manifest=manifest,
            )
            job.last_checkpoint_step = step
            job.result_model = version
            job.save(update_fields=["last_checkpoint_step", "result_model"])
            _send_after_commit(job.pk, events.checkpoint_event(step=step, model_version=version))
        self.latest_version = version
        return version


def _json_number(value: Any) -> float | int | str | None:
    """Metrics are JSON numbers; NaN and infinities (not JSON) are dropped, tensors unwrapped."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, str):
        return value[:200]
    return None


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
            job.log_tail = _append_lines(job.log_tail, [line])
        job.save(update_fields=["status", "error", "finished_at", "log_tail"])
        if line:
            # The page's log panel gets the closing line live, as it got every line before it.
            _send_after_commit(job.pk, events.log_event(lines=[line]))
        _send_after_commit(job.pk, events.job_status_event(job))
        if status == JobStatus.SUCCEEDED and job.result_model_id:
            # Before and after on the same held-out problems: the result, and the base model
            # (and the champion) unless they were already evaluated on that set.
            protocol = {
                "n_per_level": job.hyperparameters.get("eval_per_level"),
                "max_new_tokens": job.hyperparameters.get("eval_max_new_tokens"),
            }
            evaluation_request(model_version=job.result_model, **protocol)
            for version in {job.base_model, model_version_champion()} - {None}:
                evaluation_request(model_version=version, only_if_missing=True, **protocol)
    return status


def training_job_run(*, job_id: int) -> str:
    """Run (or resume) a training job in this process; returns the job's final status.

    Raises JobHeldElsewhere when another live run holds the job (the task retries later).
    """
    from webapp.registry import training_bridge

    run_token = uuid.uuid4().hex
    job = _claim(job_id, run_token)
    if job is None:
        status = TrainingJob.objects.filter(pk=job_id).values_list("status", flat=True).first()
        return status or "missing"
    recorder = JobRecorder(job)
    heartbeat = _Heartbeat(job.pk, run_token)
    heartbeat.start()
    try:
        training_bridge.run_training(job=job, recorder=recorder)
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
