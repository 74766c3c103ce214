"""Shared fixtures: real services (Redis, a live ASGI server, a Celery worker) and a real browser.

Expensive components start once per session. Fixtures that hand the test database to another process
depend on pytest-django's `django_db_setup`; tests that use them take `transactional_db` so their
data is committed and visible to that process.
"""

import time

import pytest
from django.core.management.base import CommandError
from django.db.utils import OperationalError
from django.test import TransactionTestCase

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.browser",
    "tests.fixtures.inference",
    "tests.fixtures.micro_model",
    "tests.fixtures.async_redis",
]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Run the browser tests last.

    Playwright's sync API keeps an event loop running in the main thread for as long as the
    session-scoped browser lives; pytest-asyncio tests collected after the first browser test would
    then fail with "cannot be called from a running event loop". Moving every test that uses the
    browser to the end keeps one browser per session and leaves the async tests a free thread.
    """
    uses_browser = [item for item in items if "browser" in getattr(item, "fixturenames", ())]
    others = [item for item in items if "browser" not in getattr(item, "fixturenames", ())]
    items[:] = others + uses_browser


DEADLOCK = "40P01"  # PostgreSQL's SQLSTATE for "deadlock detected"


def _is_deadlock(error: BaseException | None) -> bool:
    while error is not None:
        if (
            isinstance(error, OperationalError)
            and getattr(error.__cause__, "sqlstate", None) == DEADLOCK
        ):
            return True
        error = error.__cause__
    return False


def _flush_retrying_deadlocks(flush):
    """Flush the test database again when PostgreSQL aborted the flush to break a deadlock.

    The flush TRUNCATEs every table while the live site, the Celery worker and the inference
    workers (other processes, still running between tests) may be mid-write, e.g. serving the hint
    a browser test's last click enqueued. PostgreSQL resolves such a lock cycle by aborting one of
    the transactions; when it picks the flush, the rows stay and the next test's setup fails on
    them ("That username is taken"). The other side commits or rolls back within moments, so a
    fresh flush then goes through.
    """

    def teardown(self, *args, **kwargs):
        for attempt in range(4):
            try:
                return flush(self, *args, **kwargs)
            except CommandError as error:
                if attempt == 3 or not _is_deadlock(error):
                    raise
                time.sleep(0.2 * (attempt + 1))

    return teardown


def pytest_configure(config):
    TransactionTestCase._fixture_teardown = _flush_retrying_deadlocks(
        TransactionTestCase._fixture_teardown
    )
