"""The workers' heartbeats on a real Redis: found through the registry, never by scanning."""

import asyncio

import pytest
import redis

from inference_contract.protocol import heartbeat_key
from inference_contract.worker_registry import (
    WORKER_REGISTRY_KEY,
    heartbeat_remove,
    heartbeat_write,
    heartbeats_read,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def sync_redis(redis_test_url):
    client = redis.Redis.from_url(redis_test_url)
    yield client
    client.close()


@pytest.fixture
async def worker_ids(aredis, unique):
    ids = [f"test-{unique}-a", f"test-{unique}-b"]
    yield ids
    for worker_id in ids:
        await heartbeat_remove(aredis, worker_id)


def _ours(beats: list[dict], ids: list[str]) -> list[str]:
    return [beat["worker_id"] for beat in beats if beat.get("worker_id") in ids]


async def test_a_written_heartbeat_is_read_and_a_removed_one_is_gone(
    aredis, sync_redis, worker_ids
):
    first, second = worker_ids
    await heartbeat_write(aredis, second, {"worker_id": second, "state": "serving"}, 30)
    await heartbeat_write(aredis, first, {"worker_id": first, "state": "starting"}, 30)

    assert _ours(heartbeats_read(sync_redis), worker_ids) == [first, second]  # by id
    assert 0 < await aredis.ttl(heartbeat_key(first)) <= 30

    await heartbeat_remove(aredis, first)
    assert _ours(heartbeats_read(sync_redis), worker_ids) == [second]
    assert await aredis.zscore(WORKER_REGISTRY_KEY, first) is None


async def test_a_heartbeat_past_its_ttl_is_not_read(aredis, sync_redis, worker_ids):
    gone, alive = worker_ids
    await heartbeat_write(aredis, gone, {"worker_id": gone}, 1)
    await heartbeat_write(aredis, alive, {"worker_id": alive}, 30)
    await asyncio.sleep(1.3)
    # Its registry entry is still within the clock margin, but the key itself has expired.
    assert _ours(heartbeats_read(sync_redis), worker_ids) == [alive]


async def test_reading_costs_two_commands_however_many_keys_the_database_holds(
    aredis, sync_redis, worker_ids, unique
):
    """The event logs of an hour of answers stay in the database; reading the heartbeats must not
    walk them (SCAN did: 10 round trips per 1,000 keys, on every ask)."""
    logs = [f"test:{unique}:generation:{i}:events" for i in range(2_000)]
    async with aredis.pipeline(transaction=False) as pipe:
        for key in logs:
            pipe.xadd(key, {"e": "[]"})
        await pipe.execute()
    await heartbeat_write(aredis, worker_ids[0], {"worker_id": worker_ids[0]}, 30)
    try:
        before = sync_redis.info("commandstats")
        beats = heartbeats_read(sync_redis)
        after = sync_redis.info("commandstats")
    finally:
        await aredis.delete(*logs)

    def calls(stats: dict, command: str) -> int:
        return stats.get(f"cmdstat_{command}", {}).get("calls", 0)

    assert _ours(beats, worker_ids) == [worker_ids[0]]
    assert calls(after, "scan") == calls(before, "scan")
    read = sum(calls(after, c) - calls(before, c) for c in ("zrangebyscore", "mget"))
    assert read == 2
