"""Fixtures for the student's side of tutoring: users of each role, a practice set, a class with an
assigned set, a helper that plays the worker's part of finishing a generation, and helpers for the
answer-check limits (answers already given, a check running in another server process)."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone

from webapp.accounts.services import user_create
from webapp.classes.models import Assignment, Classroom, Enrollment
from webapp.problems.content_key import problem_content_key
from webapp.problems.models import Problem, ProblemSet
from webapp.tutoring.answer_limits import checker_lock_keys
from webapp.tutoring.models import Attempt, Generation, GenerationStatus, OwnAnswer


def make_problem(problem_set, statement, *, position=0, **fields) -> Problem:
    return Problem.objects.create(
        problem_set=problem_set,
        position=position,
        statement=statement,
        content_key=problem_content_key(statement),
        **fields,
    )


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # Users here never log in with a password; hashing one properly costs a second each.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def student(db):
    return user_create(username="ada", password="x", role="student", validate=False)


@pytest.fixture
def other_student(db):
    return user_create(username="bob", password="x", role="student", validate=False)


@pytest.fixture
def teacher(db):
    return user_create(username="tess", password="x", role="teacher", validate=False)


@pytest.fixture
def practice_set(teacher):
    """A practice set an admin made public: every student may open it."""
    problem_set = ProblemSet.objects.create(
        owner=teacher, title="Fractions", is_practice=True, is_public=True
    )
    make_problem(
        problem_set, "Compute 1/2 + 1/3.", answer_kind="expression", reference_answer="5/6"
    )
    make_problem(
        problem_set,
        "A 4 kg cart accelerates at 3 m/s^2. What net force acts on it, in N?",
        position=1,
        answer_kind="number",
        reference_answer="12",
        unit="N",
        tolerance=0.01,
    )
    return problem_set


@pytest.fixture
def assigned_set(teacher, student):
    """A non-practice set assigned to a class `student` is enrolled in."""
    problem_set = ProblemSet.objects.create(owner=teacher, title="Homework 1")
    make_problem(problem_set, "Compute 64 * 7.", answer_kind="number", reference_answer="448")
    classroom = Classroom.objects.create(teacher=teacher, name="7B", join_code="JOIN7B")
    Enrollment.objects.create(classroom=classroom, student=student)
    Assignment.objects.create(classroom=classroom, problem_set=problem_set)
    return problem_set


@pytest.fixture
def private_set(teacher):
    """A set nobody assigned and that is not for practice: no student may open it."""
    problem_set = ProblemSet.objects.create(owner=teacher, title="Draft")
    make_problem(problem_set, "Compute 2 + 2.", answer_kind="number", reference_answer="4")
    return problem_set


def finish(generation: Generation, *, status=GenerationStatus.DONE, **fields) -> Generation:
    """Play the worker's part: store the end of a generation as the worker does."""
    for name, value in fields.items():
        setattr(generation, name, value)
    generation.status = status
    generation.finished_at = timezone.now()
    generation.save()
    return generation


def answered(attempt: Attempt, count: int, *, ago=timedelta(seconds=10)) -> None:
    """`count` own answers on `attempt`, given `ago` in the past."""
    rows = OwnAnswer.objects.bulk_create(
        OwnAnswer(attempt=attempt, answer="2/5", is_correct=False) for _ in range(count)
    )
    OwnAnswer.objects.filter(pk__in=[row.pk for row in rows]).update(
        created_at=timezone.now() - ago
    )


@contextmanager
def checking_elsewhere(student) -> Iterator[None]:
    """One of `student`'s answers being checked by another server process: its check lock held on
    a database connection of its own (this test's connection is the request's)."""
    other = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", checker_lock_keys(student.pk))
        yield
    finally:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock_all()")
        other.close()
