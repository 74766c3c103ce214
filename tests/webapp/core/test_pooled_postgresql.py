"""The pool's check before a loan (webapp.core.pooled_postgresql), on the real PostgreSQL: no round
trip for a live connection, and a connection the server closed is never lent."""

import time

import psycopg
import pytest
from django.db import connection
from psycopg_pool import ConnectionPool

from webapp.core.pooled_postgresql import base as pooled

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def conninfo() -> str:
    settings = connection.settings_dict
    return psycopg.conninfo.make_conninfo(
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
        user=settings["USER"],
        dbname=settings["NAME"],
    )


@pytest.fixture
def round_trip_checks(monkeypatch) -> list:
    """Every time the quiet check falls back to the round trip."""
    calls = []
    real = ConnectionPool.check_connection

    def counting(conn):
        calls.append(conn)
        return real(conn)

    monkeypatch.setattr(pooled.ConnectionPool, "check_connection", staticmethod(counting))
    return calls


@pytest.fixture
def pool(conninfo):
    pool = ConnectionPool(
        conninfo, min_size=1, max_size=1, check=pooled.check_quietly, open=True, timeout=10
    )
    yield pool
    pool.close()


def _backend_pid(pool) -> int:
    with pool.connection() as conn:
        return conn.info.backend_pid


def test_a_live_connection_is_lent_without_a_round_trip(pool, round_trip_checks):
    pids = {_backend_pid(pool) for _ in range(20)}
    assert len(pids) == 1  # the same connection, lent 20 times
    assert round_trip_checks == []


def test_a_connection_the_server_closed_is_replaced_before_it_is_lent(
    pool, conninfo, round_trip_checks
):
    dead = _backend_pid(pool)
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [dead])
    time.sleep(0.3)  # the server's goodbye reaches the idle socket

    with pool.connection() as conn:
        assert conn.info.backend_pid != dead
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert len(round_trip_checks) == 1  # the dead one, which failed it


def test_the_sites_pool_uses_the_quiet_check():
    params = {
        **connection.settings_dict,
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {"pool": {"min_size": 1, "max_size": 2}},
    }
    wrapper = pooled.DatabaseWrapper(params, alias="quiet-check-test")
    try:
        assert wrapper.pool._check is pooled.check_quietly
    finally:
        wrapper.close_pool()
