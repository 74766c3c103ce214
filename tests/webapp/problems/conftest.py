"""Users for the problem-set tests: two teachers (to prove isolation) and a student."""

import pytest

from webapp.accounts.services import user_create


@pytest.fixture
def teacher(db):
    return user_create(username="t-ada", password="x", role="teacher", validate=False)


@pytest.fixture
def other_teacher(db):
    return user_create(username="t-bob", password="x", role="teacher", validate=False)


@pytest.fixture
def student(db):
    return user_create(username="s-cy", password="x", role="student", validate=False)


@pytest.fixture
def site_admin(db):
    return user_create(username="a-dee", password="x", role="admin", validate=False)
