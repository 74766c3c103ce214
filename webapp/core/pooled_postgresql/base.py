"""Django's PostgreSQL backend with a cheaper check of a pooled connection before each loan.

With a pool and CONN_HEALTH_CHECKS, Django has psycopg_pool run `ConnectionPool.check_connection`
on every loan: an empty query, so one round trip and one PostgreSQL transaction (pg_stat counts
it as a commit) per request, per socket step and per worker database call, about five per
generation. The check is there for a connection the server has closed while it sat in the pool (a
restart, idle_session_timeout, a killed backend). The server says so on the socket before it
closes it (an error message, then end of file), so a connection whose socket has nothing to read
is as alive as the round trip would have shown, and only one with something to read gets the
round trip (and fails it, so the pool discards it and lends another). A connection cut without a
word (a network partition) fools both checks alike: the query then fails.
"""

from __future__ import annotations

import select

import psycopg
from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool


def check_quietly(conn: psycopg.Connection) -> None:
    """Raise if `conn` is closed, or if the server wrote to it while it was idle and the round-trip
    check then fails; return at once, without a query, otherwise."""
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("the connection is closed")
    readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    if readable:
        ConnectionPool.check_connection(conn)


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):
        pool = super().pool
        if (
            pool is not None
            and self.settings_dict["CONN_HEALTH_CHECKS"]
            and pool._check is not check_quietly
        ):
            # psycopg_pool takes the check only as a constructor argument, and Django's pool
            # property passes its own; `_check` is where psycopg_pool 3 keeps it (if it ever
            # moves, this assignment does nothing and the round-trip check stays: slower, as safe).
            pool._check = check_quietly
        return pool
