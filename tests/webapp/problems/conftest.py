"""Users for the problem-set tests (two teachers, to prove isolation; a student; an admin), a
logged-in teacher's client, and the Celery tasks the services enqueue, recorded instead of sent."""

import pytest

from webapp.accounts.services import user_create
from webapp.problems import services


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


@pytest.fixture
def teacher_client(client, teacher):
    client.force_login(teacher)
    return client


@pytest.fixture
def sent(monkeypatch):
    """Tasks the services enqueue, as (name, [args]), recorded instead of sent."""
    calls: list[tuple[str, list]] = []
    monkeypatch.setattr(
        services,
        "enqueue_on_commit",
        lambda name, *args, **options: calls.append((name, list(args))),
    )
    return calls
