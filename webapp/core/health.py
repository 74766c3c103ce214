"""Selectors that report the state of every part the site depends on, for /healthz.

Each check returns {"state": "ok" | "degraded" | "down", ...details}; none raises, so one broken part
never hides the state of the others.
"""

import time

from django.db import connection

from inference_contract.protocol import GENERATION_GROUP, GENERATION_STREAM
from inference_contract.worker_registry import heartbeats_read
from webapp.celery import app as celery_app
from webapp.core.redis_client import redis_client


def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        result = check()
    except Exception as exc:  # noqa: BLE001 - a health check reports failures, it never raises
        result = {"state": "down", "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def database_health() -> dict:
    def check() -> dict:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return {"state": "ok", "vendor": connection.vendor}

    return _timed(check)


def redis_health() -> dict:
    def check() -> dict:
        redis_client().ping()
        return {"state": "ok"}

    return _timed(check)


def celery_health() -> dict:
    def check() -> dict:
        replies = celery_app.control.ping(timeout=1.0) or []
        workers = sorted(name for reply in replies for name in reply)
        return {"state": "ok" if workers else "down", "workers": workers}

    return _timed(check)


def inference_workers() -> list[dict]:
    """The live heartbeats of the inference workers, by worker id (two Redis commands)."""
    return heartbeats_read(redis_client())


def generation_queue_depth() -> dict:
    """Requests waiting for a worker and requests claimed but not yet acknowledged."""
    client = redis_client()
    waiting = 0
    pending = 0
    try:
        for group in client.xinfo_groups(GENERATION_STREAM):
            if group["name"] == GENERATION_GROUP:
                waiting = int(group.get("lag") or 0)
                pending = int(group.get("pending") or 0)
    except Exception:  # noqa: BLE001 - no stream yet means an empty queue
        pass
    return {"waiting": waiting, "pending": pending}


def inference_health() -> dict:
    def check() -> dict:
        workers = inference_workers()
        serving = [w for w in workers if w.get("state") == "serving"]
        return {
            "state": "ok" if serving else "down",
            "workers": workers,
            "queue": generation_queue_depth(),
        }

    return _timed(check)


def system_health() -> dict:
    parts = {
        "database": database_health(),
        "redis": redis_health(),
        "celery": celery_health(),
        "inference": inference_health(),
    }
    states = {part["state"] for part in parts.values()}
    overall = "ok" if states == {"ok"} else ("down" if "down" in states else "degraded")
    return {"state": overall, "checks": parts}
