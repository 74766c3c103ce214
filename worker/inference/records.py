"""The inference worker's only bridge to the database: small synchronous functions on the ORM.

The worker is an asyncio program; it calls these through `asgiref.sync.sync_to_async` in its thread
pool, and each call hands its connection back to the process's pool when it returns (see `_db` in
worker.py). Each one closes stale connections first, as a Celery task would, because a worker lives
for days. Writes that end a generation are fenced on the
worker id: if this worker was presumed dead and another took the request over, its late result is
dropped instead of overwriting the other's.
"""

import logging
from dataclasses import dataclass

from django.db import IntegrityError, close_old_connections, transaction
from django.utils import timezone

from webapp.problems.models import AnswerKind
from webapp.registry.models import ModelVersion, VersionStatus
from webapp.tutoring.grading import calculation_verdict
from webapp.tutoring.models import (
    ACTIVE_GENERATION_STATUSES,
    Generation,
    GenerationKind,
    GenerationStatus,
    Verdict,
    VerdictSource,
)
from worker.inference.engine import ModelSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationJob:
    """What the worker needs to run one generation, read when it claims the row."""

    generation_id: int
    kind: str
    problem_text: str
    answer_kind: str
    reference_answer: str
    tolerance: float | None
    unit: str
    choices: tuple[str, ...]
    has_verified_reference: bool
    cancel_requested: bool
    hint_index: int | None = None


@dataclass(frozen=True)
class Grade:
    """A solution's verdict and what it was checked against (`VerdictSource`); both blank for a
    hint."""

    verdict: str = ""
    source: str = ""


@dataclass(frozen=True)
class GenerationOutcome:
    status: str
    reasoning: str
    answer: str
    final_answer: str
    verdict: str
    prompt_tokens: int | None
    completion_tokens: int
    time_to_first_token_ms: float | None
    duration_ms: float
    error: str = ""
    thinking_ms: float | None = None  # first token to </think>; None for hints and unfinished
    confidence: float | None = None  # training.confidence.answer_confidence of the tokens
    cut_off: bool = False  # stopped at the length limit
    verdict_source: str = ""  # VerdictSource of `verdict`; blank with no verdict


def champion_spec() -> ModelSpec | None:
    """The registry's champion, or None on a site that has registered none."""
    close_old_connections()
    version = ModelVersion.objects.filter(status=VersionStatus.CHAMPION).first()
    if version is None:
        return None
    return ModelSpec(model_version_id=version.pk, label=version.label, path=version.path)


def model_version_for_path(path: str) -> ModelSpec | None:
    """The registry row whose path is `path` (the fallback model may be registered too)."""
    close_old_connections()
    version = ModelVersion.objects.filter(path=path).order_by("-created_at").first()
    if version is None:
        return None
    return ModelSpec(model_version_id=version.pk, label=version.label, path=version.path)


def generation_claim(
    *, generation_id: int, worker_id: str, model: ModelSpec
) -> GenerationJob | None:
    """Mark the generation running on this worker and read what the worker needs to run it, in
    one transaction (one commit): a conditional UPDATE, then the row with its problem. None when
    there is nothing to run: unknown id, or already finished (cancelled while queued, or
    completed before a crash lost the ack)."""
    close_old_connections()
    try:
        with transaction.atomic():
            return _claim(generation_id, worker_id, model, model.model_version_id)
    except IntegrityError:
        # The served version's registry row was deleted (the deferred foreign key fails at
        # commit): keep the label, drop the link.
        with transaction.atomic():
            return _claim(generation_id, worker_id, model, None)


def _claim(
    generation_id: int, worker_id: str, model: ModelSpec, version_id: int | None
) -> GenerationJob | None:
    # The row lock the UPDATE takes serialises it with generation_cancel until the commit.
    updated = Generation.objects.filter(
        pk=generation_id, status__in=ACTIVE_GENERATION_STATUSES
    ).update(
        status=GenerationStatus.RUNNING,
        worker_id=worker_id,
        model_version_id=version_id,
        model_version_label=model.label[:100],
        started_at=timezone.now(),
        reasoning="",
        answer="",
        error="",
    )
    return _job(generation_id) if updated else None


def _job(generation_id: int) -> GenerationJob:
    generation = Generation.objects.select_related("attempt__problem").get(pk=generation_id)
    problem = generation.attempt.problem
    return GenerationJob(
        generation_id=generation.pk,
        kind=generation.kind,
        problem_text=problem.statement,
        answer_kind=problem.answer_kind,
        reference_answer=problem.reference_answer,
        tolerance=problem.tolerance,
        unit=problem.unit,
        choices=tuple(str(choice) for choice in problem.choices or ()),
        has_verified_reference=problem.has_verified_reference,
        cancel_requested=generation.cancel_requested,
        hint_index=generation.hint_index,
    )


def generation_finish(*, generation_id: int, worker_id: str, outcome: GenerationOutcome) -> bool:
    """Store the result; False when the row is no longer this worker's to write."""
    close_old_connections()
    updated = Generation.objects.filter(
        pk=generation_id, worker_id=worker_id, status=GenerationStatus.RUNNING
    ).update(
        status=outcome.status,
        reasoning=outcome.reasoning,
        answer=outcome.answer,
        final_answer=outcome.final_answer[:500],
        verdict=outcome.verdict,
        verdict_source=outcome.verdict_source,
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
        time_to_first_token_ms=outcome.time_to_first_token_ms,
        duration_ms=outcome.duration_ms,
        thinking_ms=outcome.thinking_ms,
        confidence=outcome.confidence,
        cut_off=outcome.cut_off,
        error=outcome.error[:500],
        finished_at=timezone.now(),
    )
    if not updated:
        logger.warning(
            "generation %s is no longer running on %s; result dropped", generation_id, worker_id
        )
    return bool(updated)


def generation_requeue(*, generation_id: int, worker_id: str) -> bool:
    """Put a generation this worker started back to `queued` (the worker is shutting down)."""
    close_old_connections()
    updated = Generation.objects.filter(
        pk=generation_id, worker_id=worker_id, status=GenerationStatus.RUNNING
    ).update(status=GenerationStatus.QUEUED, worker_id="", started_at=None)
    return bool(updated)


def generation_fail_unclaimed(*, generation_id: int, error: str) -> bool:
    """Fail a generation this worker could not run at all (e.g. delivered too many times)."""
    close_old_connections()
    updated = Generation.objects.filter(
        pk=generation_id, status__in=ACTIVE_GENERATION_STATUSES
    ).update(status=GenerationStatus.FAILED, error=error[:500], finished_at=timezone.now())
    return bool(updated)


def verdict_for(job: GenerationJob, final_answer: str | None) -> Grade:
    """The verdict of a finished solution, worked out once when the worker stores it: against the
    problem's answer key (training.answers.verify, bounded in time by webapp.core.answer_checks);
    when the key cannot settle it (no verified key, or out of time) and the statement is a pure
    calculation, against its exact value (`webapp.tutoring.grading`); else `unverifiable`, from
    nothing. Hints are not graded. The page only reads what this stores."""
    if job.kind != GenerationKind.SOLUTION:
        return Grade()
    key_verdict = _answer_key_verdict(job, final_answer)
    if key_verdict != Verdict.UNVERIFIABLE:
        return Grade(key_verdict, VerdictSource.ANSWER_KEY)
    calculated = calculation_verdict(statement=job.problem_text, final_answer=final_answer or "")
    if calculated is not None:
        return Grade(calculated, VerdictSource.CALCULATION)
    return Grade(Verdict.UNVERIFIABLE, VerdictSource.NONE)


def _answer_key_verdict(job: GenerationJob, final_answer: str | None) -> str:
    """Correct or wrong against the problem's reference; `unverifiable` for a problem without a
    verified reference, or an answer the checker could not settle."""
    if not job.has_verified_reference or job.answer_kind == AnswerKind.NONE:
        return Verdict.UNVERIFIABLE
    from webapp.core.answer_checks import answer_verdict

    try:
        correct = answer_verdict(
            reference=job.reference_answer,
            answer=final_answer,
            kind=job.answer_kind,
            tolerance=job.tolerance,
            unit=job.unit or None,
            options=job.choices or None,
        )
    except Exception:  # noqa: BLE001 - a grading bug must not lose the student's solution
        logger.exception("verifying generation %s failed", job.generation_id)
        return Verdict.UNVERIFIABLE
    if correct is None:  # the checker ran out of time on this answer
        return Verdict.UNVERIFIABLE
    return Verdict.CORRECT if correct else Verdict.WRONG
