"""How the worker's asyncio loop calls the ORM (records.py): in the loop's thread pool, never on
the loop itself; each call hands its database connection back when it ends, and a call that meets
a lost connection is made once more on a new one."""

import logging
from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async
from django.db import InterfaceError, OperationalError, close_old_connections, connection

logger = logging.getLogger(__name__)


def db_call(function: Callable) -> Callable[..., Awaitable]:
    # ORM calls run in the loop's thread pool, so a burst of claims runs in parallel instead of
    # queueing behind one thread. Each call ends as a request does: with the pool (settings:
    # DB_POOL_*, CONN_MAX_AGE 0) its connection goes back to the pool, so an idle thread holds
    # none and the worker uses a bounded set however many threads it has run on; without the pool
    # the thread keeps its connection for CONN_MAX_AGE.
    def call_and_release(*args, **kwargs):
        try:
            return _retried_on_a_lost_connection(function, *args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(call_and_release, thread_sensitive=False)


def _retried_on_a_lost_connection(function: Callable, *args, **kwargs):
    """Run `function`; if its connection turns out to be dead (PostgreSQL restarted, or the
    backend was terminated, since the connection was lent or while it ran), run it once more on a
    fresh one. The worker's ORM calls may run twice: they are reads and single statements fenced
    on the row's status and worker id, so a repeat changes nothing. A pool checks connections
    before lending them, but a connection kept by a thread (DB_POOL=0) or one that dies during
    the query is only found out here; without the retry, that answer failed."""
    try:
        return function(*args, **kwargs)
    except (OperationalError, InterfaceError):
        if connection.is_usable():
            raise  # the query failed, not the connection
        logger.warning("lost the database connection in %s; retrying", function.__name__)
        connection.close()
        return function(*args, **kwargs)
