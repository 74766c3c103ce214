"""Fixtures for the security tests: cheap password hashing, users of each role, a problem with a
symbolic answer key, the Celery tasks the problem services queue (recorded), and the Redis
counters of the site's limiters cleared around each test."""

import pytest

from tests.fixtures.problems import symbolic_practice_attempt
from webapp.accounts.services import user_create
from webapp.core.rate_limits import KEY_PREFIX
from webapp.core.redis_client import redis_client
from webapp.problems import services as problem_services
from webapp.tutoring.models import Attempt


@pytest.fixture(autouse=True)
def fast_password_hashing(request, settings):
    # Hashing a password properly costs a second on this machine; these tests log in dozens of times.
    # Not for the browser tests: the live site checks passwords with its own (default) hashers, so
    # a user saved here with an MD5 hash could not log in there.
    if "live_site" in request.fixturenames:
        return
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def clean_limit_counters():
    def clear():
        client = redis_client()
        keys = list(client.scan_iter(match=f"{KEY_PREFIX}:*", count=500))
        if keys:
            client.delete(*keys)

    clear()
    yield
    clear()


@pytest.fixture
def student(db):
    return user_create(username="ada", password="right-password-1", role="student", validate=False)


@pytest.fixture
def teacher(db):
    return user_create(username="sec-teacher", password="x", role="teacher", validate=False)


@pytest.fixture
def admin(db):
    return user_create(username="root", password="admin-password-1", role="admin", validate=False)


@pytest.fixture
def symbolic_attempt(teacher, student) -> Attempt:
    """A student's attempt at a practice problem whose key only math-verify can read."""
    return symbolic_practice_attempt(teacher, student)


@pytest.fixture
def enqueued_tasks(monkeypatch) -> list[tuple[str, tuple]]:
    """The Celery tasks the problem services queue (name, arguments), recorded instead of sent."""
    calls: list[tuple[str, tuple]] = []
    monkeypatch.setattr(
        problem_services,
        "enqueue_on_commit",
        lambda name, *args, **options: calls.append((name, args)),
    )
    return calls
