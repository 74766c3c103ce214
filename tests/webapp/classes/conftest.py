"""A small school for the class tests: two teachers, three students, a set with three problems."""

import pytest

from webapp.accounts.services import user_create
from webapp.problems import services as problem_services


@pytest.fixture
def teacher(db):
    return user_create(username="t-ada", password="x", role="teacher", validate=False)


@pytest.fixture
def other_teacher(db):
    return user_create(username="t-bob", password="x", role="teacher", validate=False)


@pytest.fixture
def students(db):
    return [
        user_create(username=name, password="x", role="student", validate=False)
        for name in ("s-ann", "s-ben", "s-cat")
    ]


@pytest.fixture
def problem_set(teacher):
    problem_set = problem_services.problem_set_create(teacher=teacher, title="Week 1")
    for statement, answer in [
        ("Compute 2 + 3.", "5"),
        ("Compute 7 * 8.", "56"),
        ("Compute 9 - 4.", "5"),
    ]:
        problem_services.problem_create(
            problem_set=problem_set,
            teacher=teacher,
            fields={"statement": statement, "answer": answer},
        )
    return problem_set
