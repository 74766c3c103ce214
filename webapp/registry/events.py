"""The live events of a training job, built in one place (Zulip's event style).

They go to the Channels group `training_job.<id>` and on to the job page's WebSocket; each is a plain
JSON dict whose `type` names both the client-side handler and the consumer method that forwards it.
Nothing here sends anything: callers send after their transaction commits. (The swap control message
for the inference workers is spelled in inference_contract.protocol.swap_message.)

Server → browser events on `/ws/training-jobs/<id>/`:
- `{"type": "snapshot", "job": {...status}, "metrics": [{"step": n, ...}], "samples": [...],
  "log": "..."}` first on connect: everything so far.
- `{"type": "status", "status": "...", "status_label": "Running", "current_step": n, "total_steps": n, "error": "...",
  "last_checkpoint_step": n|null, "result_model": "label"|null}`
- `{"type": "metric", "step": n, "metrics": {"reward": .., ...}}` one per optimiser step.
- `{"type": "samples", "step": n, "samples": [{"prompt": .., "completion": .., "reward": ..}]}`
- `{"type": "log", "lines": ["...", ...]}`
- `{"type": "checkpoint", "step": n, "model_version": {"id": .., "label": ..}}`
- `{"type": "resumed", "step": n}` a new run goes on after step n: the points and samples of later
  steps came from a run that died before checkpointing them (they are deleted, and trained again).
- `{"type": "ranks", "ranks": [{"rank": n, "host": "..", "pid": n, "age_seconds": x, "state":
  "alive"|"stale"|"exited"}], "stale_after_seconds": x}` a process group's rank heartbeats, as
  its supervisor reports them (training_jobs/ranks.py); the snapshot carries the same two keys.
"""

from __future__ import annotations

from typing import Any

from webapp.registry.models import ModelVersion, TrainingJob, TrainingSample
from webapp.registry.training_jobs.ranks import rank_stale_after_seconds


def training_job_group_name(job_id: int) -> str:
    """The Channels group that receives the live events of one training job."""
    return f"training_job.{job_id}"


def job_status_event(job: TrainingJob) -> dict[str, Any]:
    return {
        "type": "status",
        "status": job.status,
        "status_label": str(job.get_status_display()),
        "current_step": job.current_step,
        "total_steps": job.total_steps,
        "error": job.error,
        "last_checkpoint_step": job.last_checkpoint_step,
        "result_model": job.result_model.label if job.result_model_id else None,
    }


def metric_event(*, step: int, metrics: dict[str, Any]) -> dict[str, Any]:
    return {"type": "metric", "step": step, "metrics": metrics}


def sample_payload(sample: TrainingSample) -> dict[str, Any]:
    return {
        "step": sample.step,
        "prompt": sample.prompt,
        "completion": sample.completion,
        "reward": sample.reward,
    }


def samples_event(*, step: int, samples: list[TrainingSample]) -> dict[str, Any]:
    return {"type": "samples", "step": step, "samples": [sample_payload(s) for s in samples]}


def log_event(*, lines: list[str]) -> dict[str, Any]:
    return {"type": "log", "lines": lines}


def checkpoint_event(*, step: int, model_version: ModelVersion) -> dict[str, Any]:
    return {
        "type": "checkpoint",
        "step": step,
        "model_version": {"id": model_version.pk, "label": model_version.label},
    }


def resumed_event(*, step: int) -> dict[str, Any]:
    return {"type": "resumed", "step": step}


def ranks_event(*, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "ranks", "ranks": rows, "stale_after_seconds": rank_stale_after_seconds()}


def snapshot_event(
    *,
    job: TrainingJob,
    metrics: list[dict[str, Any]],
    samples: list[TrainingSample],
    ranks: list[dict[str, Any]],
) -> dict[str, Any]:
    status = job_status_event(job)
    status.pop("type")
    return {
        "type": "snapshot",
        "job": status,
        "metrics": metrics,
        "samples": [sample_payload(s) for s in samples],
        "log": job.log_tail,
        "ranks": ranks,
        "stale_after_seconds": rank_stale_after_seconds(),
    }
