"""The student's services: starting attempts, the tutor-mode flow decided by the server, own-answer
checks with the shared verifier, and feedback."""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from inference_contract.protocol import HINTS_PER_ATTEMPT
from tests.webapp.tutoring.conftest import answered, checking_elsewhere, finish
from webapp.accounts.services import user_create
from webapp.core.errors import ServiceError
from webapp.problems.models import AnswerKind
from webapp.tutoring import services
from webapp.tutoring.models import (
    Attempt,
    Feedback,
    GenerationKind,
    GenerationStatus,
    OwnAnswer,
)
from webapp.tutoring.selectors import attempt_next_steps

pytestmark = pytest.mark.django_db


def only_generation(attempt):
    generations = list(attempt.generations.all())
    assert len(generations) == 1
    return generations[0]


# --- starting an attempt --------------------------------------------------------------------


def test_typed_problem_starts_a_queued_solution(student):
    attempt = services.attempt_create_from_text(
        student=student, statement="  Solve for $x$: $3x + 5 = 20$.  "
    )
    generation = only_generation(attempt)
    assert (generation.kind, generation.status) == (GenerationKind.SOLUTION, "queued")
    assert attempt.problem.statement == "Solve for $x$: $3x + 5 = 20$."
    assert attempt.problem.created_by == student
    assert attempt.problem.problem_set is None
    assert attempt.problem.answer_kind == AnswerKind.NONE


def test_typing_a_known_practice_problem_uses_it_so_a_verdict_is_possible(student, practice_set):
    attempt = services.attempt_create_from_text(student=student, statement="compute 1/2 + 1/3")
    assert attempt.problem.problem_set == practice_set
    assert attempt.problem.has_verified_reference


def test_typing_the_same_problem_twice_is_one_problem(student):
    first = services.attempt_create_from_text(student=student, statement="What is 7 * 8?")
    finish(only_generation(first))
    second = services.attempt_create_from_text(student=student, statement="what is 7 * 8")
    assert second.problem_id == first.problem_id


def test_someone_elses_typed_problem_is_not_reused(student, other_student):
    theirs = services.attempt_create_from_text(student=other_student, statement="What is 9 * 9?")
    mine = services.attempt_create_from_text(student=student, statement="What is 9 * 9?")
    assert mine.problem_id != theirs.problem_id


def test_empty_problem_is_refused(student):
    with pytest.raises(ServiceError, match="Type a problem"):
        services.attempt_create_from_text(student=student, statement="   ")
    assert not Attempt.objects.exists()


@pytest.mark.parametrize(
    "invisible",
    ["\u200b\u200b", "\u200e\u202e\u202c", "\ufeff \u2060", "\x01\x1b", "\u0301\u0301"],
    ids=["zero-width-space", "direction-marks", "bom-word-joiner", "control", "lone-marks"],
)
def test_a_problem_of_invisible_characters_only_is_empty(student, invisible):
    """Python's strip() keeps zero-width and format characters, so such a statement was queued
    for the model as a problem the student sees as blank."""
    with pytest.raises(ServiceError, match="Type a problem"):
        services.attempt_create_from_text(student=student, statement=invisible)
    assert not Attempt.objects.exists()


def test_a_typed_problem_is_stored_without_direction_controls(student):
    """U+202E (RIGHT-TO-LEFT OVERRIDE) makes "x = 21" show as "x = 12": the student would read one
    number while the model solves the other. Only the controls go; the rest is kept as typed."""
    attempt = services.attempt_create_from_text(
        student=student, statement=" \u202eSolve for x: 3x = \u202e21\u202c \u2067ok\u2069 "
    )
    assert attempt.problem.statement == "Solve for x: 3x = 21 ok"
    # Right-to-left text and the direction marks (LRM, RLM) are text, and stay.
    arabic = services.attempt_create_from_text(student=student, statement="ما هو \u200f12 + 9؟")
    assert arabic.problem.statement == "ما هو \u200f12 + 9؟"


def test_a_typed_problem_hidden_behind_controls_is_the_known_practice_problem(
    student, practice_set
):
    attempt = services.attempt_create_from_text(
        student=student, statement="Compute \u202a1/2 + 1/3\u202c."
    )
    assert attempt.problem.problem_set == practice_set
    assert attempt.problem.has_verified_reference


def test_assigned_problem_records_the_assignment(student, assigned_set):
    problem = assigned_set.problems.get()
    assignment = assigned_set.assignments.get()
    attempt = services.attempt_create(student=student, problem=problem, assignment_id=assignment.pk)
    assert attempt.assignment == assignment


def test_a_set_that_is_neither_practice_nor_assigned_is_refused(student, private_set):
    with pytest.raises(ServiceError) as error:
        services.attempt_create(student=student, problem=private_set.problems.get())
    assert error.value.status == 404


def test_an_assignment_of_another_class_is_refused(other_student, assigned_set):
    with pytest.raises(ServiceError):
        services.attempt_create(
            student=other_student,
            problem=assigned_set.problems.get(),
            assignment_id=assigned_set.assignments.get().pk,
        )


def test_assignment_must_contain_the_problem(student, assigned_set, practice_set):
    with pytest.raises(ServiceError, match="not part of this assignment"):
        services.attempt_create(
            student=student,
            problem=practice_set.problems.first(),
            assignment_id=assigned_set.assignments.get().pk,
        )


# --- tutor mode: hints one at a time, then the full solution ----------------------------------


@pytest.fixture
def tutor_attempt(student, practice_set):
    return services.attempt_create(
        student=student, problem=practice_set.problems.first(), mode="tutor"
    )


def test_tutor_mode_starts_with_the_first_hint(tutor_attempt):
    hint = only_generation(tutor_attempt)
    assert (hint.kind, hint.hint_index) == (GenerationKind.HINT, 0)
    assert tutor_attempt.hints_revealed == 1


def test_next_hint_waits_for_the_current_one(tutor_attempt, student):
    with pytest.raises(ServiceError, match="Wait for the current hint"):
        services.attempt_hint_request(attempt=tutor_attempt, user=student)
    assert tutor_attempt.generations.count() == 1


def test_hints_come_one_at_a_time_up_to_the_limit(tutor_attempt, student):
    finish(only_generation(tutor_attempt), answer="Find a common denominator.")
    for expected_index in range(1, HINTS_PER_ATTEMPT):
        hint = services.attempt_hint_request(attempt=tutor_attempt, user=student)
        assert hint.hint_index == expected_index
        finish(hint, answer=f"hint {expected_index}")
    tutor_attempt.refresh_from_db()
    assert tutor_attempt.hints_revealed == HINTS_PER_ATTEMPT
    steps = attempt_next_steps(attempt=tutor_attempt)
    assert not steps.can_hint and steps.can_reveal_solution
    with pytest.raises(ServiceError, match="No more hints"):
        services.attempt_hint_request(attempt=tutor_attempt, user=student)


def test_a_failed_hint_is_retried_without_using_up_a_hint(tutor_attempt, student):
    finish(only_generation(tutor_attempt), status=GenerationStatus.FAILED, error="worker died")
    retry = services.attempt_hint_request(attempt=tutor_attempt, user=student)
    tutor_attempt.refresh_from_db()
    assert retry.hint_index == 0
    assert tutor_attempt.hints_revealed == 1


def test_full_solution_ends_the_hints(tutor_attempt, student):
    finish(only_generation(tutor_attempt))
    solution = services.attempt_solution_request(attempt=tutor_attempt, user=student)
    assert solution.kind == GenerationKind.SOLUTION
    finish(solution, final_answer="5/6", verdict="correct")
    steps = attempt_next_steps(attempt=tutor_attempt)
    assert (steps.can_hint, steps.can_reveal_solution, steps.can_regenerate) == (
        False,
        False,
        True,
    )
    with pytest.raises(ServiceError):
        services.attempt_hint_request(attempt=tutor_attempt, user=student)


def test_solve_mode_offers_no_hints_and_regenerates_when_done(student, practice_set):
    attempt = services.attempt_create(student=student, problem=practice_set.problems.first())
    with pytest.raises(ServiceError):
        services.attempt_solution_request(attempt=attempt, user=student)  # still running
    finish(only_generation(attempt))
    with pytest.raises(ServiceError):
        services.attempt_hint_request(attempt=attempt, user=student)
    again = services.attempt_solution_request(attempt=attempt, user=student)
    assert again.kind == GenerationKind.SOLUTION
    assert attempt.generations.count() == 2


def test_nobody_else_may_ask_for_hints_or_solutions(tutor_attempt, other_student):
    finish(only_generation(tutor_attempt))
    for request in (services.attempt_hint_request, services.attempt_solution_request):
        with pytest.raises(ServiceError) as error:
            request(attempt=tutor_attempt, user=other_student)
        assert error.value.status == 403
    assert tutor_attempt.generations.count() == 1


# --- own answer -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer,expected",
    [("5/6", True), ("10/12", True), (r"\frac{5}{6}", True), ("$5/6$", True), ("2/5", False)],
)
def test_own_answer_is_checked_with_the_shared_verifier(student, practice_set, answer, expected):
    attempt = services.attempt_create(
        student=student, problem=practice_set.problems.first(), mode="tutor"
    )
    own = services.own_answer_create(attempt=attempt, user=student, answer=answer)
    assert own.is_correct is expected
    assert OwnAnswer.objects.get(pk=own.pk).answer == answer


def test_own_answer_with_a_unit_is_converted(student, practice_set):
    attempt = services.attempt_create(
        student=student, problem=practice_set.problems.get(position=1)
    )
    assert services.own_answer_create(attempt=attempt, user=student, answer="12 N").is_correct
    assert not services.own_answer_create(attempt=attempt, user=student, answer="12 kg").is_correct


def test_own_answer_without_a_reference_is_recorded_unchecked(student):
    attempt = services.attempt_create_from_text(student=student, statement="Prove it.")
    own = services.own_answer_create(attempt=attempt, user=student, answer="QED")
    assert own.is_correct is None


def test_own_answer_must_be_given_and_short(student, practice_set):
    attempt = services.attempt_create(student=student, problem=practice_set.problems.first())
    with pytest.raises(ServiceError, match="Type your answer"):
        services.own_answer_create(attempt=attempt, user=student, answer="  ")
    # Invisible characters only (zero-width space, direction marks) are no answer either.
    with pytest.raises(ServiceError, match="Type your answer"):
        services.own_answer_create(attempt=attempt, user=student, answer="\u200b\u200e")
    with pytest.raises(ServiceError, match="under 300"):
        services.own_answer_create(attempt=attempt, user=student, answer="1" * 301)
    assert not OwnAnswer.objects.exists()


def test_only_the_student_answers_their_attempt(student, other_student, practice_set):
    attempt = services.attempt_create(student=student, problem=practice_set.problems.first())
    with pytest.raises(ServiceError):
        services.own_answer_create(attempt=attempt, user=other_student, answer="5/6")


# --- own-answer limits: one account cannot keep the answer checker busy ---------------------


def test_answers_per_minute_are_refused_with_when_and_nothing_is_stored(
    student, practice_set, settings
):
    settings.OWN_ANSWER_CHECKS_PER_MINUTE = 3
    attempt = services.attempt_create(student=student, problem=practice_set.problems.first())
    answered(attempt, 2, ago=timedelta(seconds=40))
    services.own_answer_create(attempt=attempt, user=student, answer="2/5")  # the third fits
    with pytest.raises(ServiceError) as refused:
        services.own_answer_create(attempt=attempt, user=student, answer="5/6")
    error = refused.value
    assert error.code == "answer_rate_limited" and error.status == 429
    assert "3 answers in the last minute" in error.message and "(3)" in error.message
    # The oldest of the three ages out of the minute 20 seconds from now.
    frees = timezone.now() + timedelta(seconds=20)
    assert abs((error.retry_at - frees).total_seconds()) < 2
    assert re.search(
        r"You can check again in (19|20|21) s \(at \d\d:\d\d:\d\d UTC\)", error.message
    )
    assert "has not been saved" in error.message
    # Refused, not stored as a wrong attempt.
    assert not OwnAnswer.objects.filter(answer="5/6").exists()
    assert OwnAnswer.objects.count() == 3


def test_the_minute_frees_up_and_the_refused_answer_can_be_checked_then(
    student, practice_set, settings
):
    settings.OWN_ANSWER_CHECKS_PER_MINUTE = 2
    attempt = services.attempt_create(student=student, problem=practice_set.problems.first())
    answered(attempt, 2, ago=timedelta(seconds=30))
    with pytest.raises(ServiceError, match="in the last minute"):
        services.own_answer_create(attempt=attempt, user=student, answer="5/6")
    OwnAnswer.objects.update(created_at=timezone.now() - timedelta(seconds=61))
    assert services.own_answer_create(attempt=attempt, user=student, answer="5/6").is_correct


def test_the_hourly_limit_counts_every_attempt_of_the_student(student, practice_set, settings):
    settings.OWN_ANSWER_CHECKS_PER_HOUR = 4
    first, second = (
        services.attempt_create(student=student, problem=problem)
        for problem in practice_set.problems.order_by("position")
    )
    answered(first, 2, ago=timedelta(minutes=50))
    answered(second, 2, ago=timedelta(minutes=20))
    with pytest.raises(ServiceError) as refused:
        services.own_answer_create(attempt=second, user=student, answer="12 N")
    error = refused.value
    assert error.code == "answer_rate_limited" and "in the last hour" in error.message
    frees = timezone.localtime(timezone.now() + timedelta(minutes=10))
    assert f"You can check again at {frees:%H:%M}" in error.message
    OwnAnswer.objects.filter(attempt=first).update(created_at=timezone.now() - timedelta(hours=2))
    assert services.own_answer_create(attempt=second, user=student, answer="12 N").is_correct


def test_other_students_are_unaffected_by_one_at_the_limit(
    student, other_student, practice_set, settings
):
    settings.OWN_ANSWER_CHECKS_PER_MINUTE = 2
    problem = practice_set.problems.first()
    busy = services.attempt_create(student=student, problem=problem)
    answered(busy, 2)
    with pytest.raises(ServiceError, match="in the last minute"):
        services.own_answer_create(attempt=busy, user=student, answer="5/6")
    with checking_elsewhere(student):
        calm = services.attempt_create(student=other_student, problem=problem)
        assert services.own_answer_create(attempt=calm, user=other_student, answer="5/6").is_correct
        assert (
            services.own_answer_create(attempt=calm, user=other_student, answer="2/5") is not None
        )


def test_one_check_at_a_time_per_student(student, practice_set):
    attempt = services.attempt_create(student=student, problem=practice_set.problems.first())
    with checking_elsewhere(student):
        with pytest.raises(ServiceError) as refused:
            services.own_answer_create(attempt=attempt, user=student, answer="5/6")
    error = refused.value
    assert error.code == "answer_check_busy" and error.status == 429
    assert "still being checked" in error.message and error.retry_at is not None
    assert not OwnAnswer.objects.exists()
    # Once that check is done, the answer is checked.
    assert services.own_answer_create(attempt=attempt, user=student, answer="5/6").is_correct


def test_an_attempt_keeps_a_bounded_number_of_answers(student, practice_set, settings):
    settings.OWN_ANSWERS_PER_ATTEMPT = 3
    problem = practice_set.problems.first()
    attempt = services.attempt_create(student=student, problem=problem)
    answered(attempt, 3, ago=timedelta(days=2))  # however long ago
    with pytest.raises(ServiceError) as refused:
        services.own_answer_create(attempt=attempt, user=student, answer="5/6")
    error = refused.value
    assert error.code == "own_answers_full" and error.status == 429
    assert "already has 3 answers" in error.message and "start the problem again" in error.message
    assert attempt.own_answers.count() == 3
    fresh = services.attempt_create(student=student, problem=problem)
    assert services.own_answer_create(attempt=fresh, user=student, answer="5/6").is_correct


def test_site_admins_are_exempt_from_the_rate_but_not_the_attempt_cap(practice_set, settings):
    settings.OWN_ANSWER_CHECKS_PER_MINUTE = 1
    settings.OWN_ANSWERS_PER_ATTEMPT = 3
    admin = user_create(username="root", password="x", role="admin", validate=False)
    attempt = Attempt.objects.create(student=admin, problem=practice_set.problems.first())
    answered(attempt, 2)
    assert services.own_answer_create(attempt=attempt, user=admin, answer="5/6").is_correct
    with pytest.raises(ServiceError, match="already has 3 answers"):
        services.own_answer_create(attempt=attempt, user=admin, answer="5/6")


@pytest.mark.parametrize(
    "setting",
    ["OWN_ANSWER_CHECKS_PER_MINUTE", "OWN_ANSWER_CHECKS_PER_HOUR", "OWN_ANSWERS_PER_ATTEMPT"],
)
def test_the_answer_limits_are_in_the_security_docs_table(setting):
    # docs/security.md's tables of limits, with each setting's default (the value here: the test
    # settings do not change them).
    docs = (Path(__file__).resolve().parents[3] / "docs" / "security.md").read_text()
    rows = [line for line in docs.splitlines() if line.startswith("|") and f"`{setting}`" in line]
    assert rows, f"{setting} is not in a table of docs/security.md"
    assert any(f"| {getattr(django_settings, setting)} |" in row for row in rows), rows


# --- feedback -------------------------------------------------------------------------------


@pytest.fixture
def done_solution(student, practice_set):
    attempt = services.attempt_create(student=student, problem=practice_set.problems.first())
    return finish(only_generation(attempt), answer=r"\boxed{5/6}", final_answer="5/6")


def test_feedback_is_stored_and_replaced(done_solution, student):
    services.feedback_save(
        generation=done_solution,
        user=student,
        rating=-1,
        tags=["unclear_step", "too_long", "too_long"],
        text="step 2 skips the common denominator",
    )
    stored = Feedback.objects.get()
    assert (stored.rating, stored.tags) == (-1, ["unclear_step", "too_long"])
    assert stored.text == "step 2 skips the common denominator"
    services.feedback_save(generation=done_solution, user=student, rating=1, tags=["too_long"])
    stored = Feedback.objects.get()
    assert (stored.rating, stored.tags) == (1, [])


def test_an_own_answer_and_feedback_are_stored_without_direction_controls(done_solution, student):
    # "\u202e6/5" shows as "5/6" (the right answer) but holds 6/5: the verdict and the page must
    # agree, so the stored answer is what it holds, and it is wrong.
    own = services.own_answer_create(
        attempt=done_solution.attempt, user=student, answer="\u202e6/5\u202c"
    )
    assert (own.answer, own.is_correct) == ("6/5", False)
    with pytest.raises(ServiceError, match="Type your answer"):
        services.own_answer_create(attempt=done_solution.attempt, user=student, answer="\u202e ")
    services.feedback_save(
        generation=done_solution, user=student, rating=-1, text="\u2066step 2\u2069 is wrong"
    )
    assert Feedback.objects.get().text == "step 2 is wrong"


def test_feedback_refuses_unknown_tags_and_unfinished_generations(done_solution, student):
    with pytest.raises(ServiceError, match="Unknown feedback tags"):
        services.feedback_save(generation=done_solution, user=student, rating=-1, tags=["rude"])
    running = services.attempt_solution_request(attempt=done_solution.attempt, user=student)
    with pytest.raises(ServiceError, match="once it has finished"):
        services.feedback_save(generation=running, user=student, rating=1)
    assert not Feedback.objects.exists()


def test_feedback_only_from_the_attempts_student(done_solution, other_student):
    with pytest.raises(ServiceError):
        services.feedback_save(generation=done_solution, user=other_student, rating=1)
