"""Accounts and a problem with a symbolic answer key, shared by the security tests."""

import pytest

from webapp.accounts.services import user_create
from webapp.problems.content_key import problem_content_key
from webapp.problems.models import Problem, ProblemSet
from webapp.tutoring.models import Attempt


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # Accounts here log in with force_login; hashing a password properly costs a second each.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def student(db):
    return user_create(username="sec-student", password="x", role="student", validate=False)


@pytest.fixture
def teacher(db):
    return user_create(username="sec-teacher", password="x", role="teacher", validate=False)


@pytest.fixture
def admin(db):
    return user_create(username="sec-admin", password="x", role="admin", validate=False)


@pytest.fixture
def symbolic_attempt(teacher, student) -> Attempt:
    """A student's attempt at a practice problem whose key only math-verify can read."""
    problem_set = ProblemSet.objects.create(owner=teacher, title="Algebra", is_practice=True)
    statement = "Expand (x+1)^2."
    problem = Problem.objects.create(
        problem_set=problem_set,
        position=0,
        statement=statement,
        content_key=problem_content_key(statement),
        answer_kind="expression",
        reference_answer="x^2+2x+1",
    )
    return Attempt.objects.create(student=student, problem=problem)
