"""Where the inference workers' heartbeats are, found without scanning the keyspace.

Each worker writes its state (JSON) under `heartbeat_key(worker_id)` with a TTL, and in the same
MULTI records its id in the sorted set `WORKER_REGISTRY_KEY`, scored with the time that heartbeat
expires. A reader takes the ids whose heartbeat may still be alive from the set and reads those
keys: two commands, whatever else the database holds. The key's own TTL stays the truth (an
expired key reads as nothing); the score only narrows the search, so it is read with a margin for
clocks that differ between the worker's host and the reader's.

Why not `SCAN` for the prefix: SCAN walks the whole keyspace, 100 keys per round trip, and every
generation leaves an event log for an hour (protocol.EVENT_LOG_TTL_SECONDS). An hour of a class
at once is tens of thousands of keys, and the ask page, the attempt page and the health check each
read the heartbeats: at 50,000 keys SCAN took 500 commands and 106 ms per read, the registry 2
and 0.35 ms (bench/bench_heartbeat_read.py; docs/inference-worker.md, "Heartbeat").
"""

from __future__ import annotations

import json
import time
from typing import Any

from inference_contract.protocol import KEY_PREFIX, heartbeat_key

WORKER_REGISTRY_KEY = f"{KEY_PREFIX}:workers"
# A reader also asks for ids whose recorded expiry passed this long ago: another host's clock may
# be behind the reader's. A heartbeat that did expire reads as nothing all the same.
CLOCK_MARGIN_S = 60
# Ids whose heartbeat expired longer ago than this are dropped by the next beat of any worker.
FORGET_AFTER_S = 3600


def heartbeat_queue(pipe: Any, worker_id: str, state: dict, ttl_s: int) -> None:
    """Queue a heartbeat's commands on a pipeline (redis-py, sync or asyncio; MULTI, so the key
    and its registry entry are written together)."""
    now = time.time()
    pipe.set(heartbeat_key(worker_id), json.dumps(state), ex=ttl_s)
    pipe.zadd(WORKER_REGISTRY_KEY, {worker_id: now + ttl_s})
    pipe.zremrangebyscore(WORKER_REGISTRY_KEY, "-inf", now - FORGET_AFTER_S)


async def heartbeat_write(client: Any, worker_id: str, state: dict, ttl_s: int) -> None:
    """Write a worker's heartbeat and record it in the registry (`client`: redis.asyncio)."""
    async with client.pipeline(transaction=True) as pipe:
        heartbeat_queue(pipe, worker_id, state, ttl_s)
        await pipe.execute()


def heartbeat_forget(pipe: Any, worker_id: str) -> None:
    """Queue the removal of a heartbeat and its registry entry on a pipeline (sync or asyncio)."""
    pipe.delete(heartbeat_key(worker_id))
    pipe.zrem(WORKER_REGISTRY_KEY, worker_id)


async def heartbeat_remove(client: Any, worker_id: str) -> None:
    """A worker that stops takes its heartbeat and its registry entry with it."""
    async with client.pipeline(transaction=True) as pipe:
        heartbeat_forget(pipe, worker_id)
        await pipe.execute()


def heartbeats_read(client: Any) -> list[dict]:
    """The live heartbeats, ordered by worker id (`client`: a synchronous redis-py client)."""
    ids = client.zrangebyscore(WORKER_REGISTRY_KEY, time.time() - CLOCK_MARGIN_S, "+inf")
    if not ids:
        return []
    ids = sorted(i.decode() if isinstance(i, bytes) else str(i) for i in ids)
    beats = []
    for raw in client.mget([heartbeat_key(i) for i in ids]):
        if raw:
            try:
                beats.append(json.loads(raw))
            except ValueError:
                continue
    return beats
