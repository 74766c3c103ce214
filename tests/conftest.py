"""Shared fixtures: real services (Redis, a live ASGI server, a Celery worker) and a real browser.

Expensive components start once per session. Fixtures that hand the test database to another process
depend on pytest-django's `django_db_setup`; tests that use them take `transactional_db` so their
data is committed and visible to that process.
"""

import pytest

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
