"""The job's recorder: the training.observer.TrainingObserver a run of a job reports to.

Each report writes in its own short transaction fenced by the run token (RunSuperseded if another
run took the job over): one TrainingMetric per step, a few sample completions, the log tail,
every checkpoint as a candidate ModelVersion (published first under the job's `versions/`, since
the trainer prunes its own), a resumed run's starting step (what a dead run stored after it is
dropped), and a process group's rank heartbeats (TrainingJob.rank_beats); each sends its live
event to the job's group after the commit.
should_stop() is True once an admin asked to cancel, or when another run took the job over.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from training.observer import RankBeat
from webapp.core.after_commit import send_on_commit
from webapp.registry import events
from webapp.registry.models import ModelVersion, TrainingJob, TrainingMetric, TrainingSample
from webapp.registry.services import model_version_register
from webapp.registry.training_jobs.bridge import publish_checkpoint
from webapp.registry.training_jobs.ranks import beats_as_json, rank_rows

logger = logging.getLogger(__name__)

LOG_TAIL_LINES = 200
SAMPLES_KEPT_PER_STEP = 64
SAMPLES_SENT_PER_STEP = 4


class RunSuperseded(Exception):
    """This run's token no longer matches the job's: another run took the job over."""


def send_after_commit(job_id: int, event: dict[str, Any]) -> None:
    # A live view missing an event must not stop training: send_on_commit logs a failure.
    group = events.training_job_group_name(job_id)
    send_on_commit(
        lambda: async_to_sync(get_channel_layer().group_send)(group, event),
        what=f"{event['type']} event for training job {job_id}",
    )


def append_lines(tail: str, lines: list[str]) -> str:
    stamped = [f"{timezone.now():%H:%M:%S} {line}" for line in lines]
    kept = (tail.splitlines() + stamped)[-LOG_TAIL_LINES:]
    return "\n".join(kept)


class JobRecorder:
    """One run of one job as a training.observer.TrainingObserver (plus record_spec).

    Each report writes in its own short transaction fenced by the run token (raising
    RunSuperseded if another run took over) and sends its live event after the commit.
    """

    def __init__(self, job: TrainingJob) -> None:
        self.job_id = job.pk
        self.run_token = job.run_token
        self.base_model = job.base_model
        self.label_prefix = f"{job.base_model.label[:60]}-job{job.pk}"
        self.latest_version: ModelVersion | None = job.result_model
        self.output_dir = job.output_dir

    def _fenced(self):
        return TrainingJob.objects.select_for_update().filter(
            pk=self.job_id, run_token=self.run_token
        )

    def _locked_job(self) -> TrainingJob:
        job = self._fenced().first()
        if job is None:
            raise RunSuperseded(f"job {self.job_id} was taken over by another run")
        return job

    def metrics(self, step: int, metrics: dict[str, Any]) -> None:
        clean = {k: _json_number(v) for k, v in metrics.items() if _json_number(v) is not None}
        with transaction.atomic():
            job = self._locked_job()
            TrainingMetric.objects.update_or_create(job=job, step=step, defaults={"metrics": clean})
            job.current_step = max(job.current_step, step)
            job.heartbeat_at = timezone.now()
            job.save(update_fields=["current_step", "heartbeat_at"])
            send_after_commit(job.pk, events.metric_event(step=step, metrics=clean))
            send_after_commit(job.pk, events.job_status_event(job))

    def samples(self, step: int, samples: list[dict[str, Any]]) -> None:
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
            send_after_commit(
                self.job_id,
                events.samples_event(step=step, samples=rows[:SAMPLES_SENT_PER_STEP]),
            )

    def log(self, line: str) -> None:
        lines = [part.rstrip() for part in line.splitlines() if part.strip()]
        if not lines:
            return
        with transaction.atomic():
            job = self._locked_job()
            job.log_tail = append_lines(job.log_tail, lines)
            job.save(update_fields=["log_tail"])
            send_after_commit(job.pk, events.log_event(lines=lines))

    def rank_heartbeats(self, beats: list[RankBeat]) -> None:
        """Keep every rank's last beat on the job (replacing the previous report whole)."""
        with transaction.atomic():
            job = self._locked_job()
            job.rank_beats = beats_as_json(beats)
            job.save(update_fields=["rank_beats"])
            send_after_commit(job.pk, events.ranks_event(rows=rank_rows(job)))

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

    def checkpoint_written(self, step: int, path: str, info: dict[str, Any]) -> None:
        """Publish the checkpoint under the job's `versions/` (the trainer prunes its own) and
        register it as a candidate version of the job."""
        published = publish_checkpoint(
            source=Path(path), target=Path(self.output_dir) / "versions" / f"step-{step:06d}"
        )
        manifest_path = published / "manifest.json"
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
        manifest = {
            "step": step,
            "stage": info.get("stage"),
            "stage_step": info.get("stage_step"),
            "run_checkpoint": str(path),
            **{k: manifest[k] for k in ("c3po", "c3po_job", "created_at") if k in manifest},
        }
        self.register_version(step, str(published), manifest)

    def resumed(self, step: int) -> None:
        """The run goes on after `step`: drop what a dead run stored for the steps after it (they
        are trained again). Not done when the job is claimed: only the trainer knows which
        checkpoint it loaded, and the job may not have recorded the newest one yet."""
        with transaction.atomic():
            job = self._locked_job()
            TrainingMetric.objects.filter(job=job, step__gt=step).delete()
            TrainingSample.objects.filter(job=job, step__gt=step).delete()
            job.current_step = step
            job.save(update_fields=["current_step"])
            send_after_commit(job.pk, events.resumed_event(step=step))
            send_after_commit(job.pk, events.job_status_event(job))

    def register_version(self, step: int, path: str, manifest: dict[str, Any]) -> ModelVersion:
        """Record a published checkpoint as the job's newest candidate ModelVersion."""
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
            send_after_commit(job.pk, events.checkpoint_event(step=step, model_version=version))
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
