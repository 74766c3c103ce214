"""Reading the inference workers' heartbeats as the keyspace fills with event logs: the registry
(inference_contract.worker_registry, what the site does) against the SCAN it replaced, side by
side in one run on one Redis database.

Every ask page, attempt page and health check reads the heartbeats, and every generation leaves
its event log in Redis for an hour, so the key count is what an hour of answers leaves behind.

    .venv/bin/python bench/bench_heartbeat_read.py [--redis redis://127.0.0.1:6379/13]

Prints, per key count: milliseconds per read and Redis commands per read, for both ways (median
of 20 reads each, alternating). The database is flushed before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402

from inference_contract.protocol import HEARTBEAT_PREFIX, event_log_key  # noqa: E402
from inference_contract.worker_registry import heartbeat_write, heartbeats_read  # noqa: E402

KEY_COUNTS = (0, 1_000, 10_000, 50_000)
READS = 20


def scan_read(client: redis.Redis) -> list:
    """The way before the registry (webapp.core.health until 2026-12-06): SCAN for the prefix."""
    keys = sorted(client.scan_iter(match=f"{HEARTBEAT_PREFIX}*", count=100))
    return [raw for raw in client.mget(keys) if raw] if keys else []


def commands(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k != "cmdstat_info")


def timed(client: redis.Redis, read) -> tuple[float, float]:
    before = commands(client)
    start = time.perf_counter()
    read(client)
    ms = (time.perf_counter() - start) * 1000
    return ms, commands(client) - before  # INFO itself is left out of the count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args()
    client = redis.Redis.from_url(args.redis)
    client.flushdb()
    asyncio.run(_two_workers(args.redis))
    print("| keys | registry ms | registry commands | SCAN ms | SCAN commands | SCAN / registry |")
    print("|---|---|---|---|---|---|")
    made = 0
    try:
        for count in KEY_COUNTS:
            pipe = client.pipeline(transaction=False)
            for i in range(made, count):
                pipe.xadd(event_log_key(10**7 + i), {"e": "[]"})
            pipe.execute()
            made = count
            rows = {"registry": [], "scan": []}
            for n in range(READS):  # alternating, so drift hits both
                order = [("registry", heartbeats_read), ("scan", scan_read)]
                for name, read in order if n % 2 == 0 else order[::-1]:
                    rows[name].append(timed(client, read))
            reg_ms = statistics.median(r[0] for r in rows["registry"])
            scan_ms = statistics.median(r[0] for r in rows["scan"])
            reg_cmd = statistics.median(r[1] for r in rows["registry"])
            scan_cmd = statistics.median(r[1] for r in rows["scan"])
            print(
                f"| {client.dbsize()} | {reg_ms:.2f} | {reg_cmd:.0f} | {scan_ms:.2f} | "
                f"{scan_cmd:.0f} | {scan_ms / reg_ms:.1f}× |"
            )
    finally:
        client.flushdb()


async def _two_workers(url: str) -> None:
    client = aioredis.Redis.from_url(url)
    for worker_id in ("bench-a", "bench-b"):
        await heartbeat_write(client, worker_id, {"worker_id": worker_id}, 600)
    await client.aclose()


if __name__ == "__main__":
    main()
