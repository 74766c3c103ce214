"""Reads for the model registry and the admin dashboard.

Versions with their latest evaluation, the champion, training jobs with their metrics and samples,
and the state of the serving side (inference heartbeats, queue depths, Celery workers) gathered for
the dashboard. Nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Prefetch, QuerySet

from webapp.registry.models import (
    Evaluation,
    EvaluationStatus,
    ModelVersion,
    PromotionEvent,
    TrainingJob,
    TrainingMetric,
    TrainingSample,
    VersionStatus,
)
from webapp.registry.training_jobs.evaluation import evaluation_options


def model_version_champion() -> ModelVersion | None:
    return ModelVersion.objects.filter(status=VersionStatus.CHAMPION).first()


def model_version_latest_evaluation(
    *, model_version: ModelVersion, fingerprint: str | None = None
) -> Evaluation | None:
    """The newest finished evaluation; with `fingerprint`, one on the same held-out problems when
    there is one (so that a candidate is compared with the champion on equal terms)."""
    done = model_version.evaluations.filter(status=EvaluationStatus.DONE).order_by("-created_at")
    if fingerprint:
        same = done.filter(problems_fingerprint=fingerprint).first()
        if same is not None:
            return same
    return done.first()


def evaluation_is_reference(evaluation: Evaluation) -> bool:
    """Was this evaluation run with the site's reference protocol (the default problem count,
    seed and answer cap)? Anything else is a quick check: its figures are not comparable."""
    reference = evaluation_options()
    return all(evaluation.options.get(key) == value for key, value in reference.items())


@dataclass(frozen=True)
class VersionRow:
    """One line of the registry table. The accuracy shown for a version is its newest reference
    evaluation; a newer quick check (another n or token cap) is shown apart, with its settings,
    and never takes the reference figure's place."""

    version: ModelVersion
    evaluation: Evaluation | None  # newest evaluation of any status (pending ones show progress)
    finished_evaluation: Evaluation | None  # the newest finished reference evaluation
    quick_check: Evaluation | None = None  # a finished quick check newer than the reference

    @property
    def domains(self) -> list[tuple[str, dict[str, Any]]]:
        if self.finished_evaluation is None:
            return []
        return sorted(self.finished_evaluation.results.items())

    @property
    def quick_domains(self) -> list[tuple[str, dict[str, Any]]]:
        return sorted(self.quick_check.results.items()) if self.quick_check else []

    @property
    def promotion_basis(self) -> Evaluation | None:
        """What Promote's confirmation cites: the reference evaluation, else the quick check."""
        return self.finished_evaluation or self.quick_check

    @property
    def promotion_basis_domains(self) -> list[tuple[str, dict[str, Any]]]:
        basis = self.promotion_basis
        return sorted(basis.results.items()) if basis else []


def model_version_rows(*, limit: int = 50) -> list[VersionRow]:
    """Registry rows: the champion first, then candidates, then retired versions, newest first."""
    order = {VersionStatus.CHAMPION: 0, VersionStatus.CANDIDATE: 1, VersionStatus.RETIRED: 2}
    versions = list(
        ModelVersion.objects.select_related("training_job", "parent").prefetch_related(
            Prefetch("evaluations", queryset=Evaluation.objects.order_by("-created_at"))
        )[:limit]
    )
    versions.sort(key=lambda v: (order.get(v.status, 3), -v.created_at.timestamp()))
    rows = []
    for version in versions:
        evaluations = list(version.evaluations.all())
        done = [e for e in evaluations if e.status == EvaluationStatus.DONE]
        reference = next((e for e in done if evaluation_is_reference(e)), None)
        quick = next((e for e in done if not evaluation_is_reference(e)), None)
        if quick is not None and reference is not None and quick.created_at < reference.created_at:
            quick = None  # an older quick check says nothing the reference does not
        rows.append(
            VersionRow(
                version=version,
                evaluation=evaluations[0] if evaluations else None,
                finished_evaluation=reference,
                quick_check=quick,
            )
        )
    return rows


def promotion_event_list(*, limit: int = 20) -> QuerySet[PromotionEvent]:
    return PromotionEvent.objects.select_related("model_version", "previous_champion", "actor")[
        :limit
    ]


def training_job_list(*, limit: int = 30) -> QuerySet[TrainingJob]:
    return TrainingJob.objects.select_related("base_model", "result_model", "created_by")[:limit]


def training_job_get(*, job_id: int) -> TrainingJob | None:
    return (
        TrainingJob.objects.select_related("base_model", "result_model", "created_by")
        .filter(pk=job_id)
        .first()
    )


def training_job_metric_rows(*, job: TrainingJob) -> list[dict[str, Any]]:
    """Every stored metric row, oldest step first, as {"step": n, **metrics}."""
    return [
        {"step": row.step, **row.metrics}
        for row in TrainingMetric.objects.filter(job=job).order_by("step")
    ]


def training_job_recent_samples(*, job: TrainingJob, limit: int = 12) -> list[TrainingSample]:
    return list(TrainingSample.objects.filter(job=job).order_by("-step", "-id")[:limit])


def training_job_checkpoints(*, job: TrainingJob) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(training_job=job).order_by("created_at")


def training_job_problem_accuracy(*, job: TrainingJob, limit: int = 40) -> list[dict[str, Any]]:
    """Mean reward per training prompt over the stored samples: which problems the policy learns.

    Rows {"prompt", "samples", "accuracy", "first", "last"} (first/last: mean reward over the
    samples of the earliest and latest step the prompt was sampled in), hardest first.
    """
    by_prompt: dict[str, dict[int, list[float]]] = {}
    for prompt, step, reward in TrainingSample.objects.filter(job=job).values_list(
        "prompt", "step", "reward"
    ):
        by_prompt.setdefault(prompt, {}).setdefault(step, []).append(reward)
    rows = []
    for prompt, steps in by_prompt.items():
        rewards = [r for values in steps.values() for r in values]
        first, last = steps[min(steps)], steps[max(steps)]
        rows.append(
            {
                "prompt": prompt,
                "samples": len(rewards),
                "accuracy": sum(r > 0 for r in rewards) / len(rewards),
                "first": sum(first) / len(first),
                "last": sum(last) / len(last),
            }
        )
    rows.sort(key=lambda r: (r["accuracy"], r["prompt"]))
    return rows[:limit]


@dataclass(frozen=True)
class ServingStatus:
    """What the serving side looks like right now (the dashboard's status panel)."""

    inference_workers: list[dict[str, Any]]
    generation_queue: dict[str, int]
    celery: dict[str, Any]
    celery_queues: dict[str, int | None]
    recent_swaps: list[dict[str, Any]]


def serving_status() -> ServingStatus:
    """Inference heartbeats (version served, in flight, tokens/s, swap errors), the generation
    queue, Celery workers and the depth of its queues. Never raises: a part that cannot be read
    is reported empty, the way /healthz reports it."""
    from inference_contract.control import recent_swap_results
    from webapp.core.health import celery_health, generation_queue_depth, inference_workers
    from webapp.core.redis_client import redis_client

    try:
        workers = sorted(inference_workers(), key=lambda w: str(w.get("worker_id", "")))
    except Exception:  # noqa: BLE001 - Redis down: the panel says so instead of failing the page
        workers = []
    queues: dict[str, int | None] = {}
    swaps: list[dict[str, Any]] = []
    try:
        client = redis_client()
        # With the Redis broker, a Celery queue is a list named after the queue.
        for name in ("default", "training"):
            queues[name] = int(client.llen(name))
        swaps = recent_swap_results(client, limit=5)
    except Exception:  # noqa: BLE001 - same as above
        queues = {"default": None, "training": None}
    return ServingStatus(
        inference_workers=workers,
        generation_queue=generation_queue_depth(),
        celery=celery_health(),
        celery_queues=queues,
        recent_swaps=swaps,
    )
