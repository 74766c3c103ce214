"""Fixtures for the security tests: cheap password hashing, users of each role, and the Redis
counters of the site's limiters cleared around each test."""

import pytest

from webapp.accounts.services import user_create
from webapp.core.rate_limits import KEY_PREFIX
from webapp.core.redis_client import redis_client


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # Hashing a password properly costs a second on this machine; these tests log in dozens of times.
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
def admin(db):
    user = user_create(username="root", password="admin-password-1", role="admin", validate=False)
    return user
