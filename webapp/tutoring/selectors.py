"""Reads for the student's side of tutoring: what a student may open, their history, and what an
attempt allows next.

Access rules live here and nowhere else. A student sees the practice sets of the teachers whose
classes they are in, practice sets an admin made public, the sets assigned to classes they are
enrolled in, the problems they typed themselves, and only their own attempts; a site admin
may read every attempt (support). `attempt_next_steps` is the one place that decides the tutor-mode
flow (next hint, full solution, regenerate): the pages draw their buttons from it and the services
refuse whatever it does not allow, so nothing depends on hiding text in the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery, Window
from django.db.models.functions import RowNumber

from inference_contract.protocol import HINTS_PER_ATTEMPT
from training.answers import answer_unit_mismatch
from webapp.classes.models import Assignment, Classroom
from webapp.core.errors import ServiceError
from webapp.problems.models import Problem, ProblemSet
from webapp.tutoring.models import (
    ACTIVE_GENERATION_STATUSES,
    Attempt,
    AttemptMode,
    Generation,
    GenerationKind,
    GenerationStatus,
    OwnAnswer,
)

if TYPE_CHECKING:
    from webapp.accounts.models import User

_ENDED_WITHOUT_RESULT = (GenerationStatus.CANCELLED, GenerationStatus.FAILED)


def _not_found(what: str) -> ServiceError:
    # 404 rather than 403 for other people's rows: their existence is not the student's business.
    return ServiceError(f"That {what} does not exist.", code="not_found", status=404)


# --- problems a student may open ------------------------------------------------------------


def _practice_q(student) -> Q:
    """Practice sets the student may see: public ones, and those of their own teachers."""
    own_teachers = Classroom.objects.filter(enrollments__student=student).values("teacher_id")
    return Q(is_practice=True) & (Q(is_public=True) | Q(owner_id__in=own_teachers))


def practice_sets_for_student(*, student: User) -> QuerySet[ProblemSet]:
    return ProblemSet.objects.filter(_practice_q(student)).annotate(
        problem_count=Count("problems", distinct=True)
    )


def _problem_sets_open_to(student) -> QuerySet[ProblemSet]:
    return ProblemSet.objects.filter(
        _practice_q(student) | Q(assignments__classroom__enrollments__student=student)
    ).distinct()


def problem_set_get_for_student(*, problem_set_id: int, student: User) -> ProblemSet:
    problem_set = _problem_sets_open_to(student).filter(pk=problem_set_id).first()
    if problem_set is None:
        raise _not_found("problem set")
    return problem_set


def assignment_get_for_student(*, assignment_id: int, student: User) -> Assignment:
    assignment = (
        Assignment.objects.filter(pk=assignment_id, classroom__enrollments__student=student)
        .select_related("classroom", "problem_set")
        .first()
    )
    if assignment is None:
        raise _not_found("assignment")
    return assignment


def problems_open_to_student(*, student: User) -> QuerySet[Problem]:
    """Every problem the student may start an attempt on."""
    return Problem.objects.filter(
        Q(problem_set__in=_problem_sets_open_to(student))
        | Q(problem_set__isnull=True, created_by=student)
    )


def problem_get_for_student(*, problem_id: int, student: User) -> Problem:
    problem = problems_open_to_student(student=student).filter(pk=problem_id).first()
    if problem is None:
        raise _not_found("problem")
    return problem


# --- what counts as solved ------------------------------------------------------------------
#
# One rule, used by the set and assignment pages, the history and the class progress: a student
# has solved a problem once any of their own answers to it, in any attempt, was checked correct.
# A later wrong answer does not unsolve it; the pages show the answer that solved it (the first)
# next to the latest one when they differ.


def solving_answers(*, student: User, problem: Problem | int | OuterRef) -> QuerySet[OwnAnswer]:
    """The student's correct own answers to `problem` (an id or an OuterRef), first first."""
    return OwnAnswer.objects.filter(
        attempt__student=student, attempt__problem=problem, is_correct=True
    ).order_by("created_at", "pk")


def problem_list_with_progress(*, problem_set: ProblemSet, student: User) -> QuerySet[Problem]:
    """The set's problems, each with `solved` (see the rule above), `solved_with` (the answer
    that solved it) and `latest_attempt_id` (to reopen the last try)."""
    own_attempts = Attempt.objects.filter(student=student, problem=OuterRef("pk"))
    solving = solving_answers(student=student, problem=OuterRef("pk"))
    return problem_set.problems.annotate(
        solved=Exists(solving),
        solved_with=Subquery(solving.values("answer")[:1]),
        latest_attempt_id=Subquery(own_attempts.order_by("-created_at").values("pk")[:1]),
    )


# --- attempts and generations ---------------------------------------------------------------


def attempt_get_for_user(*, attempt_id: int, user: User) -> Attempt:
    """An attempt its student (or a site admin) may read; 404 for anyone else's."""
    attempts = Attempt.objects.select_related(
        "problem", "problem__problem_set", "assignment", "assignment__classroom"
    )
    if not user.is_site_admin:
        attempts = attempts.filter(student=user)
    attempt = attempts.filter(pk=attempt_id).first()
    if attempt is None:
        raise _not_found("attempt")
    return attempt


def generation_get_for_user(*, generation_id: int, user: User) -> Generation:
    generations = Generation.objects.select_related("attempt", "attempt__problem")
    if not user.is_site_admin:
        generations = generations.filter(attempt__student=user)
    generation = generations.filter(pk=generation_id).first()
    if generation is None:
        raise _not_found("solution")
    return generation


def attempt_timeline(*, attempt: Attempt) -> QuerySet[Generation]:
    """Hints and solutions of an attempt in the order they were asked for, each with `number`
    (1, 2, ... per kind: "Hint 2", "Solution 3") and the student's feedback prefetched."""
    order = [F("queued_at").asc(), F("pk").asc()]
    return (
        attempt.generations.select_related("attempt__problem", "model_version")
        .prefetch_related("feedback")
        .annotate(number=Window(RowNumber(), partition_by=[F("kind")], order_by=order))
        .order_by(*order)
    )


def timeline_generation(*, attempt: Attempt, generation_id: int) -> Generation:
    """One generation of the attempt's timeline, numbered as on the page."""
    # Filtering the queryset by pk would number the window over that one row; pick it in Python.
    return next(g for g in attempt_timeline(attempt=attempt) if g.pk == generation_id)


def attempt_list_for_student(*, student: User, query: str = "") -> QuerySet[Attempt]:
    """The student's attempts, newest first, optionally filtered by words of the problem or of a
    final answer; each carries its latest solution (`latest_*`), its latest own answer
    (`own_answer`, `own_answer_correct`) and whether the problem is solved by the one rule
    above (`solved_with`: the answer that solved it, in this attempt or another, else None)."""
    latest_solution = Generation.objects.filter(
        attempt=OuterRef("pk"), kind=GenerationKind.SOLUTION
    ).order_by("-queued_at", "-pk")
    latest_own = OwnAnswer.objects.filter(attempt=OuterRef("pk")).order_by("-created_at", "-pk")
    attempts = (
        Attempt.objects.filter(student=student)
        .select_related("problem", "problem__problem_set", "assignment__classroom")
        .annotate(
            latest_status=Subquery(latest_solution.values("status")[:1]),
            latest_verdict=Subquery(latest_solution.values("verdict")[:1]),
            latest_final_answer=Subquery(latest_solution.values("final_answer")[:1]),
            own_answer=Subquery(latest_own.values("answer")[:1]),
            own_answer_correct=Subquery(latest_own.values("is_correct")[:1]),
            solved_with=Subquery(
                solving_answers(student=student, problem=OuterRef("problem")).values("answer")[:1]
            ),
        )
        .order_by("-created_at", "-pk")
    )
    for word in query.split()[:8]:
        # EXISTS, not a join: each filter() on `generations__…` added a join of its own, so an
        # attempt with G generations made G**words rows before DISTINCT (6 generations and 8
        # words: 57 s in PostgreSQL, on every keystroke of the search box). The other relations
        # are many-to-one, so every attempt stays one row and needs no DISTINCT.
        answer_matches = Generation.objects.filter(
            attempt=OuterRef("pk"), final_answer__icontains=word
        )
        attempts = attempts.filter(
            Q(problem__statement__icontains=word)
            | Exists(answer_matches)
            | Q(problem__problem_set__title__icontains=word)
        )
    return attempts


@dataclass(frozen=True)
class AttemptNextSteps:
    """What the student may do next on an attempt; decided from the rows, never from the page."""

    busy: bool  # a hint or solution is queued or running: one at a time
    can_hint: bool
    next_hint_index: int  # the hint_index the next hint request would get
    hints_left: int
    can_reveal_solution: bool  # tutor mode, no solution asked for yet
    can_regenerate: bool  # a solution was asked for: ask for another one

    @property
    def next_hint_number(self) -> int:
        return self.next_hint_index + 1


def attempt_next_steps(
    *, attempt: Attempt, generations: list[Generation] | None = None
) -> AttemptNextSteps:
    """What the student may ask for next. `generations`: all of the attempt's, oldest first, when
    the caller already holds them (an attempt it has just created), saving the query."""
    if generations is None:
        generations = list(attempt.generations.order_by("queued_at", "pk"))
    busy = any(g.status in ACTIVE_GENERATION_STATUSES for g in generations)
    solution_asked = any(g.kind == GenerationKind.SOLUTION for g in generations)
    hints = [g for g in generations if g.kind == GenerationKind.HINT]
    # A hint that was stopped or failed is asked for again with the same index, so a failure does
    # not use up one of the student's hints.
    retry = bool(hints) and hints[-1].status in _ENDED_WITHOUT_RESULT
    next_hint_index = hints[-1].hint_index if retry else attempt.hints_revealed
    next_hint_index = next_hint_index or 0
    in_tutor_mode = attempt.mode == AttemptMode.TUTOR
    can_hint = (
        in_tutor_mode
        and not busy
        and not solution_asked
        and (retry or attempt.hints_revealed < HINTS_PER_ATTEMPT)
    )
    return AttemptNextSteps(
        busy=busy,
        can_hint=can_hint,
        next_hint_index=next_hint_index,
        hints_left=max(0, HINTS_PER_ATTEMPT - attempt.hints_revealed) if in_tutor_mode else 0,
        can_reveal_solution=in_tutor_mode and not busy and not solution_asked,
        can_regenerate=solution_asked and not busy,
    )


def own_answer_unit_note(*, own_answer: OwnAnswer | None) -> str:
    """Why a wrong own answer's unit cannot be right ("kg measures a mass, but the question asks
    for a length (m)."), or "" (right, unchecked, or wrong for another reason)."""
    if own_answer is None or own_answer.is_correct is not False:
        return ""
    problem = own_answer.attempt.problem
    if problem is None or not problem.reference_answer:
        return ""
    note = answer_unit_mismatch(
        problem.reference_answer,
        own_answer.answer,
        kind=problem.answer_kind,
        unit=problem.unit or None,
    )
    return note or ""
