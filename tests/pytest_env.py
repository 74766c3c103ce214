"""Environment for the test run, loaded as an early plugin (`-p tests.pytest_env` in pyproject).

It runs before pytest-django sets Django up, so the settings module sees these values. Tests talk to
the real local PostgreSQL and Redis (a separate Redis database number, so a developer's running site
is left alone). Override with TEST_DATABASE_URL / TEST_REDIS_URL.
"""

import os

os.environ["DATABASE_URL"] = os.environ.get(
    "TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ringtutor"
)
os.environ["REDIS_URL"] = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/5")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
os.environ.setdefault("DEBUG", "1")
# Django's check against ORM calls from async code stays on: only the `browser` fixture
# (tests/fixtures/browser.py) switches it off, while Playwright's event loop runs in the test thread.
# No connection pool in the test process itself (each asyncio context would keep a pooled
# connection); the real processes it starts (tests/fixtures/services.py) use one.
os.environ["DB_POOL"] = "0"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# /healthz shows its details only to admins and to callers with this token (the live site's tests).
os.environ.setdefault("HEALTHZ_TOKEN", "test-healthz-token")
