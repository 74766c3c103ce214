"""A scratch PostgreSQL database for a bench that drives the site in-process (Django's test client,
the services): created and migrated on entry, dropped on exit, under a name of the bench's own so
that a test run (test_ringtutor…) or another bench is left alone. Call after django.setup()."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def scratch_database(name: str) -> Iterator[None]:
    from django.conf import settings
    from django.db import connections
    from django.test.utils import (
        setup_databases,
        setup_test_environment,
        teardown_databases,
        teardown_test_environment,
    )

    connections["default"].settings_dict["TEST"]["NAME"] = name
    settings.ALLOWED_HOSTS = ["testserver"]
    setup_test_environment()
    old_config = setup_databases(verbosity=0, interactive=False)
    try:
        yield
    finally:
        teardown_databases(old_config, verbosity=0)
        teardown_test_environment()
