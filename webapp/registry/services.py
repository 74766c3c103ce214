"""Writes for the model registry: registering versions, evaluating them, promotion and rollback.

Promotion is the one way a version starts serving: it passes the promotion gate (promotion_gate.py;
an admin may override, with a recorded reason), becomes the single champion (the `one_champion`
constraint), retires the previous champion and, once the transaction has committed, broadcasts the
swap control message that every inference worker acts on (`worker_swap_broadcast`, the one swap
broadcast of the site). Rollback is promoting the previous champion again. Training jobs live in
the training_jobs package.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from inference_contract.control import publish_swap
from training.scoring import domain_results
from webapp.audit.models import AuditAction
from webapp.audit.services import audit_record
from webapp.core.after_commit import enqueue_on_commit, send_on_commit
from webapp.core.errors import ServiceError
from webapp.core.locks import advisory_xact_lock
from webapp.core.redis_client import redis_client
from webapp.core.user_text import normalise_user_text
from webapp.registry.liveness import local_process_state, this_host
from webapp.registry.models import (
    Evaluation,
    EvaluationStatus,
    ModelVersion,
    PromotionAction,
    PromotionEvent,
    TrainingJob,
    VersionStatus,
)
from webapp.registry.promotion_gate import GateDecision, compare_evaluations
from webapp.registry.selectors import model_version_champion, model_version_latest_evaluation
from webapp.registry.training_jobs.bridge import held_out_evaluation
from webapp.registry.training_jobs.evaluation import evaluation_fingerprint, evaluation_options

if TYPE_CHECKING:
    from webapp.accounts.models import User

logger = logging.getLogger(__name__)

# Any constant works: it only has to be the same for every process that promotes.
_PROMOTION_LOCK_KEY = 7_201_605


@transaction.atomic
def model_version_ensure_default_champion() -> ModelVersion:
    """Make sure a champion exists: on a fresh site, the configured model (ring-tiny by default)."""
    champion = ModelVersion.objects.filter(status=VersionStatus.CHAMPION).first()
    if champion is not None:
        return champion
    path = settings.RING_MODEL
    label = Path(path).name if Path(path).exists() else path.rsplit("/", 1)[-1]
    version, _ = ModelVersion.objects.get_or_create(label=label, defaults={"path": path})
    version.status = VersionStatus.CHAMPION
    version.promoted_at = timezone.now()
    version.save(update_fields=["status", "promoted_at"])
    return version


@transaction.atomic
def model_version_register(
    *,
    path: str,
    label: str,
    parent: ModelVersion | None = None,
    training_job: TrainingJob | None = None,
    manifest: dict[str, Any] | None = None,
) -> ModelVersion:
    """Add a candidate checkpoint to the registry (idempotent per label and path).

    Registering the same label for the same path again returns the existing row, so that a resumed
    job re-announcing a checkpoint does not fail; the same label for another path is refused.
    """
    label = label.strip()
    if not label:
        raise ServiceError("A model version needs a label.")
    existing = ModelVersion.objects.filter(label=label).first()
    if existing is not None:
        if existing.path != path:
            raise ServiceError(
                f"The label {label!r} is already used by {existing.path}.", code="label_taken"
            )
        if manifest and existing.manifest != manifest:
            existing.manifest = manifest
            existing.save(update_fields=["manifest"])
        return existing
    return ModelVersion.objects.create(
        label=label,
        path=path,
        parent=parent,
        training_job=training_job,
        manifest=manifest or {},
        status=VersionStatus.CANDIDATE,
    )


def _evaluation_is_running(evaluation: Evaluation) -> bool:
    """A running evaluation whose process is gone (same host, dead pid) is not running."""
    return evaluation.status == EvaluationStatus.RUNNING and (
        local_process_state(evaluation.worker_hostname, evaluation.worker_pid) is not False
    )


def _enqueue_evaluation(evaluation: Evaluation) -> None:
    enqueue_on_commit("registry.run_evaluation", evaluation.pk)


def evaluation_request(
    *,
    model_version: ModelVersion,
    n_per_level: int | None = None,
    max_new_tokens: int | None = None,
    only_if_missing: bool = False,
) -> Evaluation:
    """Queue a held-out evaluation of `model_version` on the `default` Celery queue.

    An evaluation of the same version with the same protocol that is pending or running is
    returned instead of a second one; with `only_if_missing`, so is a finished one.
    """
    options = evaluation_options(n_per_level=n_per_level, max_new_tokens=max_new_tokens)
    fingerprint = evaluation_fingerprint(options)
    with transaction.atomic():
        same = model_version.evaluations.filter(problems_fingerprint=fingerprint).order_by(
            "-created_at"
        )
        for existing in same.filter(
            status__in=[EvaluationStatus.PENDING, EvaluationStatus.RUNNING]
        ):
            if existing.status == EvaluationStatus.RUNNING and not _evaluation_is_running(existing):
                # Its worker died: run it again rather than leave it "running" for ever.
                existing.status = EvaluationStatus.PENDING
                existing.save(update_fields=["status"])
                _enqueue_evaluation(existing)
            return existing
        if only_if_missing and (done := same.filter(status=EvaluationStatus.DONE).first()):
            return done
        evaluation = Evaluation.objects.create(
            model_version=model_version,
            options=options,
            problems_fingerprint=fingerprint,
            split=f"held-out {options['n_per_level']}/level ≤{options['max_new_tokens']} tok",
        )
        _enqueue_evaluation(evaluation)
    return evaluation


def evaluation_recover_stalled() -> list[int]:
    """Re-queue the evaluations whose worker died while running them; returns their ids."""
    recovered = []
    for evaluation in Evaluation.objects.filter(status=EvaluationStatus.RUNNING):
        if _evaluation_is_running(evaluation):
            continue
        with transaction.atomic():
            updated = Evaluation.objects.filter(
                pk=evaluation.pk, status=EvaluationStatus.RUNNING, worker_pid=evaluation.worker_pid
            ).update(status=EvaluationStatus.PENDING)
            if updated:
                _enqueue_evaluation(evaluation)
                recovered.append(evaluation.pk)
    return recovered


def evaluation_run(*, evaluation: Evaluation) -> Evaluation:
    """Run a queued evaluation in this process (the Celery worker; minutes on a CPU).

    It is claimed first (status `running` with this host and pid, committed, so the dashboard
    shows progress and a dead worker's evaluation can be recognised); a second delivery of the
    same evaluation finds it claimed and returns. The per-level rows of the evaluation become one
    row per domain (what the gate compares). A checkpoint that is missing or unreadable fails the
    evaluation with the reason, it does not raise.
    """
    with transaction.atomic():
        evaluation = Evaluation.objects.select_for_update().get(pk=evaluation.pk)
        if evaluation.status == EvaluationStatus.RUNNING and _evaluation_is_running(evaluation):
            return evaluation
        if evaluation.status not in (EvaluationStatus.PENDING, EvaluationStatus.RUNNING):
            return evaluation
        evaluation.status = EvaluationStatus.RUNNING
        evaluation.worker_hostname = this_host()
        evaluation.worker_pid = os.getpid()
        evaluation.started_at = timezone.now()
        evaluation.save(update_fields=["status", "worker_hostname", "worker_pid", "started_at"])
    version = evaluation.model_version
    options = evaluation.options or evaluation_options()
    try:
        report = held_out_evaluation(model_path=version.path, options=options)
    except ServiceError as exc:
        evaluation.status = EvaluationStatus.FAILED
        evaluation.error = exc.message
    except Exception as exc:
        logger.exception("evaluation of %s failed", version.label)
        evaluation.status = EvaluationStatus.FAILED
        evaluation.error = f"{type(exc).__name__}: {exc}"[:2000]
    else:
        evaluation.status = EvaluationStatus.DONE
        evaluation.results = domain_results(report["results"])
        evaluation.problem_count = sum(r["n"] for r in report["results"])
        evaluation.report = {k: v for k, v in report.items() if k != "results"}
    evaluation.finished_at = timezone.now()
    evaluation.save()
    return evaluation


def promotion_tolerance() -> float:
    """The gate's tolerance (absolute accuracy): settings.PROMOTION_TOLERANCE."""
    return float(settings.PROMOTION_TOLERANCE)


def promotion_gate_check(*, candidate: ModelVersion, champion: ModelVersion | None) -> GateDecision:
    """Compare the latest finished evaluations of a candidate and the champion, per domain."""
    candidate_eval = model_version_latest_evaluation(model_version=candidate)
    champion_eval = (
        model_version_latest_evaluation(
            model_version=champion,
            fingerprint=candidate_eval.problems_fingerprint if candidate_eval else None,
        )
        if champion is not None
        else None
    )
    decision = compare_evaluations(
        candidate_eval.results if candidate_eval else None,
        champion_eval.results if champion_eval else None,
        tolerance=promotion_tolerance(),
    )
    if (
        candidate_eval
        and champion_eval
        and candidate_eval.problems_fingerprint != champion_eval.problems_fingerprint
    ):
        decision.notes.append(
            "The two evaluations used different held-out problems; the comparison is approximate."
        )
    return decision


def _lock_promotions() -> None:
    # Two admins promoting at once must not both read the same champion: serialise promotions.
    advisory_xact_lock(_PROMOTION_LOCK_KEY)


def worker_swap_broadcast(*, model_version: ModelVersion) -> int:
    """Ask every inference worker to serve `model_version`; a promotion sends it on commit.

    Each worker loads the checkpoint next to the one it serves, checks it against ringmodel,
    switches new requests to it and lets the old engine finish its answers; a worker with LoRA
    serving on hot-loads a LoRA version's adapter into its running engine instead, when the
    adapter applies to it (worker/inference/lora.py). A checkpoint that fails is refused and the
    worker keeps the old one. Results arrive on
    inference_contract.protocol.swap_result_channel, in the workers' heartbeats (`model_version`, `last_swap`,
    `last_swap_error`) and in `inference_contract.control.recent_swap_results`.
    Returns the number of workers listening.
    """
    receivers = publish_swap(
        redis_client(),
        model_version_id=model_version.pk,
        label=model_version.label,
        path=model_version.path,
    )
    logger.info("swap to %s broadcast to %d worker(s)", model_version.label, receivers)
    return receivers


def _make_champion(
    *,
    model_version: ModelVersion,
    actor,
    action: str,
    override: bool,
    reason: str,
    gate: GateDecision,
) -> PromotionEvent:
    previous = (
        ModelVersion.objects.select_for_update().filter(status=VersionStatus.CHAMPION).first()
    )
    if previous is not None:
        previous.status = VersionStatus.RETIRED
        previous.save(update_fields=["status"])
    model_version.status = VersionStatus.CHAMPION
    model_version.promoted_at = timezone.now()
    model_version.save(update_fields=["status", "promoted_at"])
    event = PromotionEvent.objects.create(
        action=action,
        model_version=model_version,
        previous_champion=previous,
        actor=actor,
        override=override,
        reason=reason,
        gate=gate.to_dict(),
    )
    audit_record(
        action=AuditAction.MODEL_ROLLED_BACK
        if action == PromotionAction.ROLLBACK
        else AuditAction.MODEL_PROMOTED,
        actor=actor,
        target=model_version,
        details={
            "previous_champion": previous.label if previous is not None else "",
            "override": override,
            "gate_passed": gate.passed,
            **({"reason": reason[:500]} if reason else {}),
        },
    )
    send_on_commit(
        lambda: worker_swap_broadcast(model_version=model_version),
        what=f"swap to {model_version.label}",
    )
    return event


@transaction.atomic
def model_version_promote(
    *, model_version: ModelVersion, actor: User, override: bool = False, reason: str = ""
) -> PromotionEvent:
    """Make `model_version` the champion if it does not regress the current one.

    Raises ServiceError (code "regression", 409) when the gate refuses and `override` is off;
    an override needs a reason, and is recorded on the PromotionEvent with the gate's numbers.
    """
    _lock_promotions()
    model_version = ModelVersion.objects.select_for_update().get(pk=model_version.pk)
    if model_version.status == VersionStatus.CHAMPION:
        raise ServiceError(f"{model_version.label} is already the champion.", code="already")
    reason = normalise_user_text(reason)  # an admin's words, shown on the dashboard
    if override and not reason:
        raise ServiceError("An override needs a reason.", code="reason_required")
    champion = model_version_champion()
    gate = promotion_gate_check(candidate=model_version, champion=champion)
    if not gate.passed and not override:
        message = gate.summary() if gate.comparisons else " ".join(gate.notes)
        raise ServiceError(
            f"Promotion refused: {message} Override with a reason to promote anyway.",
            code="regression",
            status=409,
        )
    return _make_champion(
        model_version=model_version,
        actor=actor,
        action=PromotionAction.PROMOTE,
        override=override and not gate.passed,
        reason=reason,
        gate=gate,
    )


def model_version_previous_champion() -> ModelVersion | None:
    """The version the current champion replaced when it was promoted (what rollback restores).

    Rollback events are skipped, so repeated rollbacks walk back through the promotion history
    (C → B → A) instead of toggling between the last two versions.
    """
    champion = model_version_champion()
    if champion is None:
        return None
    event = (
        PromotionEvent.objects.filter(model_version=champion, action=PromotionAction.PROMOTE)
        .exclude(previous_champion=None)
        .select_related("previous_champion")
        .first()
    )
    return event.previous_champion if event is not None else None


@transaction.atomic
def model_version_rollback(*, actor: User, reason: str = "") -> PromotionEvent:
    """Promote the previous champion again. The gate is reported, not enforced: rollback is the
    way back from a bad promotion and must always work."""
    _lock_promotions()
    previous = model_version_previous_champion()
    if previous is None:
        raise ServiceError("There is no previous champion to roll back to.", code="no_previous")
    previous = ModelVersion.objects.select_for_update().get(pk=previous.pk)
    gate = promotion_gate_check(candidate=previous, champion=model_version_champion())
    return _make_champion(
        model_version=previous,
        actor=actor,
        action=PromotionAction.ROLLBACK,
        override=False,
        reason=normalise_user_text(reason),
        gate=gate,
    )
