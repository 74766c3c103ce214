"""How the worker's asyncio loop calls the ORM (records.py): in the loop's thread pool, never on
the loop itself, and each call hands its database connection back when it ends."""

from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async
from django.db import close_old_connections


def db_call(function: Callable) -> Callable[..., Awaitable]:
    # ORM calls run in the loop's thread pool, so a burst of claims runs in parallel instead of
    # queueing behind one thread. Each call ends as a request does: with the pool (settings:
    # DB_POOL_*, CONN_MAX_AGE 0) its connection goes back to the pool, so an idle thread holds
    # none and the worker uses a bounded set however many threads it has run on; without the pool
    # the thread keeps its connection for CONN_MAX_AGE.
    def call_and_release(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(call_and_release, thread_sensitive=False)
