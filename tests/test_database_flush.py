"""The flush between transactional tests survives a deadlock with another process.

Live processes (the site, the Celery and inference workers) keep writing to the test database while
a browser test's teardown TRUNCATEs every table. This builds the same lock cycle on purpose: another
connection holds the last table the TRUNCATE needs, waits until the flush queues behind it, then
asks for the first table, which the flush already holds. PostgreSQL aborts the flush (its wait
started first, so its deadlock check runs first); the teardown flushes again and the rows go.
"""

import re
import threading
import time

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.core.management.color import no_style
from django.db import connection
from django.test import TransactionTestCase

from tests.fixtures.services import database_url_of

pytestmark = pytest.mark.integration


def flush_order() -> list[str]:
    """The tables in the order the flush's TRUNCATE locks them."""
    tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
    (truncate,) = [s for s in connection.ops.sql_flush(no_style(), tables) if "TRUNCATE" in s]
    return re.findall(r'"([^"]+)"', truncate.split(";")[0])


def flush_is_waiting(db: psycopg.Connection, holder_pid: int) -> bool:
    """Another backend waits for a lock this one (`holder_pid`) holds."""
    row = db.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
        (holder_pid,),
    ).fetchone()
    return row[0] > 0


def test_the_teardown_flush_retries_after_postgresql_aborts_it_in_a_deadlock(transactional_db):
    get_user_model().objects.create_user("left-behind", password="x")
    order = flush_order()
    url = database_url_of(connection.settings_dict)
    outcome: dict = {}
    held = threading.Event()

    def other_process() -> None:
        with psycopg.connect(url) as holder, psycopg.connect(url, autocommit=True) as watcher:
            holder.execute(f'LOCK TABLE "{order[-1]}" IN ACCESS SHARE MODE')
            held.set()
            deadline = time.monotonic() + 20
            while not flush_is_waiting(watcher, holder.info.backend_pid):
                if time.monotonic() > deadline:
                    outcome["error"] = "the flush never waited for the held table"
                    return
                time.sleep(0.02)
            # Now the flush holds every earlier table: asking for the first closes the cycle.
            holder.execute(f'LOCK TABLE "{order[0]}" IN ACCESS SHARE MODE')
            outcome["other side got its locks"] = True
            holder.commit()

    thread = threading.Thread(target=other_process)
    thread.start()
    assert held.wait(timeout=20)
    try:
        TransactionTestCase()._fixture_teardown()
    finally:
        thread.join(timeout=30)
    assert outcome == {"other side got its locks": True}
    assert not get_user_model().objects.filter(username="left-behind").exists()
