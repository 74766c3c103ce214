"""Writes for the student's side of tutoring: starting an attempt, asking for hints and solutions,
checking the student's own answer, and feedback on a solution.

Generations are created and queued only through `generation_enqueue` (webapp.tutoring.
generation_services), which enforces the worker's limits; what the student may ask for next is
decided by `selectors.attempt_next_steps`, and every request it does not allow is refused here.
The student's own answer is checked with `training.answers.verify`, the verifier that also grades
the model, so "correct" means the same thing for both; it runs through `webapp.core.answer_checks`,
whose time limit turns an answer too costly to work out into "couldn't check" (`is_correct` None).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import F

from webapp.core.answer_checks import answer_verdict
from webapp.core.errors import ServiceError
from webapp.core.user_text import is_blank, normalise_user_text
from webapp.problems.content_key import problem_content_key
from webapp.problems.models import AnswerKind, Domain, Problem
from webapp.tutoring.answer_limits import hold_answer_check, own_answer_limits
from webapp.tutoring.generation_services import generation_enqueue
from webapp.tutoring.models import (
    Attempt,
    AttemptMode,
    Feedback,
    Generation,
    GenerationKind,
    GenerationStatus,
    OwnAnswer,
)
from webapp.tutoring.selectors import (
    assignment_get_for_student,
    attempt_next_steps,
    problems_open_to_student,
)

if TYPE_CHECKING:
    from webapp.accounts.models import User
    from webapp.classes.models import Assignment

MAX_OWN_ANSWER_CHARS = 300
MAX_FEEDBACK_TEXT_CHARS = 2000
FEEDBACK_TAGS = {
    "wrong_answer": "Wrong answer",
    "unclear_step": "Unclear step",
    "too_long": "Too long",
    "other": "Other",
}


def _ensure_own(attempt: Attempt, user) -> None:
    # Admins may read attempts, but only the student acts on them: hints, answers and feedback are
    # the student's record.
    if attempt.student_id != user.pk:
        raise ServiceError("This is not your attempt.", code="forbidden", status=403)


def _lock(attempt: Attempt) -> Attempt:
    """The attempt row locked for this transaction, so two quick clicks cannot both pass the
    next-steps check."""
    return Attempt.objects.select_for_update().get(pk=attempt.pk)


def _hint_enqueue(*, attempt: Attempt, hint_index: int) -> Generation:
    # The worker reads the index from its queue entry; the row keeps it for the hint flow and for
    # numbering hints on the page.
    return generation_enqueue(attempt=attempt, kind=GenerationKind.HINT, hint_index=hint_index)


def problem_for_typed_statement(*, student: User, statement: str) -> Problem:
    """The problem a student typed. A statement that matches a problem the student may already open
    (a practice or assigned one) is that problem, so its reference answer gives a verdict; the same
    typed text twice is one problem."""
    # Direction controls removed first (webapp.core.user_text), so what the student sees is what
    # the model solves and what the reference answer is matched against.
    statement = normalise_user_text(statement)
    if is_blank(statement):
        raise ServiceError("Type a problem first.", code="empty")
    key = problem_content_key(statement)
    known = (
        problems_open_to_student(student=student)
        .filter(content_key=key)
        # Problems of a set (which may carry a reference answer) before typed ones.
        .order_by(F("problem_set_id").asc(nulls_last=True), "pk")
    )
    for problem in known:
        if problem.has_verified_reference or problem.problem_set_id is None:
            return problem
    return Problem.objects.create(
        created_by=student,
        statement=statement,
        domain=Domain.MATH,
        answer_kind=AnswerKind.NONE,
        content_key=key,
    )


@transaction.atomic
def attempt_create(
    *,
    student: User,
    problem: Problem,
    mode: str = AttemptMode.SOLVE,
    assignment_id: int | None = None,
) -> Attempt:
    """Start an attempt and queue its first generation: the solution, or in tutor mode the first
    hint. Raises ServiceError when a limit (concurrency, prompt length) refuses the request; then
    nothing is stored."""
    if mode not in AttemptMode.values:
        raise ServiceError("Choose a full solution or hints.", code="bad_mode")
    if not problems_open_to_student(student=student).filter(pk=problem.pk).exists():
        raise ServiceError("That problem does not exist.", code="not_found", status=404)
    assignment = None
    if assignment_id is not None:
        assignment = assignment_get_for_student(assignment_id=assignment_id, student=student)
        if assignment.problem_set_id != problem.problem_set_id:
            raise ServiceError("That problem is not part of this assignment.", code="mismatch")
    return _attempt_start(student=student, problem=problem, mode=mode, assignment=assignment)


def _attempt_start(
    *, student: User, problem: Problem, mode: str, assignment: Assignment | None = None
) -> Attempt:
    """The attempt row and its first generation, for a problem already known to be open to the
    student (the callers check; a typed problem is open by construction)."""
    # By id: `student` may be request.user's lazy wrapper, and the row's own user is a real one.
    attempt = Attempt.objects.create(
        student_id=student.pk, problem=problem, assignment=assignment, mode=mode
    )
    if mode == AttemptMode.TUTOR:
        generation = _hint_enqueue(attempt=attempt, hint_index=0)
        attempt.hints_revealed = 1
        attempt.save(update_fields=["hints_revealed"])
    else:
        generation = generation_enqueue(attempt=attempt, kind=GenerationKind.SOLUTION)
    # The page that answers the click draws it without reading it back (views._attempt_started).
    attempt.first_generation = generation
    return attempt


@transaction.atomic
def attempt_create_from_text(
    *, student: User, statement: str, mode: str = AttemptMode.SOLVE
) -> Attempt:
    if mode not in AttemptMode.values:
        raise ServiceError("Choose a full solution or hints.", code="bad_mode")
    problem = problem_for_typed_statement(student=student, statement=statement)
    # The problem is one the student may open (a match among those) or their own new one, so the
    # openness check of attempt_create would only repeat a query.
    return _attempt_start(student=student, problem=problem, mode=mode)


@transaction.atomic
def attempt_hint_request(*, attempt: Attempt, user: User) -> Generation:
    """Queue the next hint. `Attempt.hints_revealed` counts the hints asked for; a hint that was
    stopped or failed is asked for again without using up another."""
    _ensure_own(attempt, user)
    attempt = _lock(attempt)
    steps = attempt_next_steps(attempt=attempt)
    if not steps.can_hint:
        if steps.busy:
            raise ServiceError("Wait for the current hint to finish, or stop it.", code="busy")
        raise ServiceError(
            "No more hints for this problem: ask for the full solution.", code="no_hint"
        )
    generation = _hint_enqueue(attempt=attempt, hint_index=steps.next_hint_index)
    attempt.hints_revealed = max(attempt.hints_revealed, steps.next_hint_index + 1)
    attempt.save(update_fields=["hints_revealed"])
    return generation


@transaction.atomic
def attempt_solution_request(*, attempt: Attempt, user: User) -> Generation:
    """Queue a full solution: the first one in tutor mode ("show the full solution"), or another
    one (regenerate) once a solution has been asked for."""
    _ensure_own(attempt, user)
    attempt = _lock(attempt)
    steps = attempt_next_steps(attempt=attempt)
    if not (steps.can_reveal_solution or steps.can_regenerate):
        raise ServiceError("Wait for the current answer to finish, or stop it.", code="busy")
    return generation_enqueue(attempt=attempt, kind=GenerationKind.SOLUTION)


def own_answer_create(*, attempt: Attempt, user: User, answer: str) -> OwnAnswer:
    """Record the student's own answer and, when the problem has a reference, whether it is right
    (`is_correct` stays None when there is nothing to check against, or the check ran out of
    time).

    Refused with status 429, storing nothing, while another of the student's answers is being
    checked, past the student's answers per minute or per hour, or once the attempt keeps
    `OWN_ANSWERS_PER_ATTEMPT` answers (webapp.tutoring.answer_limits). The lock that makes a
    student's checks one at a time is held until the answer's row is committed."""
    _ensure_own(attempt, user)
    answer = normalise_user_text(answer)
    if is_blank(answer):
        raise ServiceError("Type your answer first.", code="empty")
    if len(answer) > MAX_OWN_ANSWER_CHARS:
        raise ServiceError(
            f"Keep the answer under {MAX_OWN_ANSWER_CHARS} characters: just the final result.",
            code="too_long",
        )
    with transaction.atomic():
        hold_answer_check(user=user)
        refusal = own_answer_limits(user=user, attempt=attempt).refusal()
        if refusal is not None:
            raise refusal
        problem = attempt.problem
        is_correct = None
        if problem.has_verified_reference:
            is_correct = answer_verdict(
                reference=problem.reference_answer,
                answer=answer,
                kind=problem.answer_kind,
                tolerance=problem.tolerance,
                unit=problem.unit or None,
                options=problem.choices or None,
            )
        return OwnAnswer.objects.create(attempt=attempt, answer=answer, is_correct=is_correct)


def feedback_save(
    *,
    generation: Generation,
    user: User,
    rating: int,
    tags: list[str] | None = None,
    text: str = "",
) -> Feedback:
    """Store (or replace) the student's rating of a solution or hint, kept for training."""
    _ensure_own(generation.attempt, user)
    if generation.status not in (GenerationStatus.DONE, GenerationStatus.CANCELLED):
        raise ServiceError("Rate it once it has finished.", code="not_finished")
    if rating not in (1, -1):
        raise ServiceError("Choose thumbs up or thumbs down.", code="bad_rating")
    tags = list(dict.fromkeys(tags or []))
    unknown = set(tags) - set(FEEDBACK_TAGS)
    if unknown:
        raise ServiceError(f"Unknown feedback tags: {', '.join(sorted(unknown))}.", code="bad_tag")
    text = normalise_user_text(text)
    if len(text) > MAX_FEEDBACK_TEXT_CHARS:
        raise ServiceError(f"Keep it under {MAX_FEEDBACK_TEXT_CHARS} characters.", code="too_long")
    if rating == 1:
        # The tags name what went wrong; a thumbs up clears them.
        tags = []
    feedback, _ = Feedback.objects.update_or_create(
        generation=generation, user=user, defaults={"rating": rating, "tags": tags, "text": text}
    )
    return feedback
