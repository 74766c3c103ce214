"""The one way the site serialises work across its server processes: a PostgreSQL advisory lock
held until the current transaction ends (promotions in webapp.registry, a student's answer checks
in webapp.tutoring.answer_limits).

On another database (SQLite, the zero-configuration local site, not a served one) there are no
advisory locks: the call holds nothing and says it did, so the code around it behaves as with one
process, which is what such a site runs.
"""

from __future__ import annotations

from django.db import connection


def advisory_xact_lock(*keys: int, wait: bool = True) -> bool:
    """Take the advisory lock named by `keys` (one bigint, or two int4s) for the current
    transaction: waiting for it (`wait`), or not (False at once when another transaction holds
    it). True once held."""
    if connection.vendor != "postgresql":
        return True
    function = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
    placeholders = ", ".join(["%s"] * len(keys))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}({placeholders})", keys)
        (result,) = cursor.fetchone()
    return wait or bool(result)
