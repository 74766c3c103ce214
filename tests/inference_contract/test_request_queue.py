"""The durable queue on a real Redis: claim, ack, re-claim from a dead consumer, give up."""

import asyncio

import pytest
import redis

from inference_contract.protocol import stream_entry
from inference_contract.request_queue import RequestQueue

pytestmark = pytest.mark.integration


@pytest.fixture
async def names(aredis, unique):
    stream, group = f"test:{unique}:stream", f"test-{unique}"
    yield stream, group
    await aredis.delete(stream)


def _queue(aredis, names, consumer, **kwargs) -> RequestQueue:
    stream, group = names
    return RequestQueue(aredis, consumer=consumer, stream=stream, group=group, **kwargs)


async def test_entries_are_claimed_once_and_acknowledged(aredis, names):
    first = _queue(aredis, names, "w1")
    second = _queue(aredis, names, "w2")
    await first.ensure_group()
    await second.ensure_group()  # idempotent: a second worker joins the same group
    for generation_id in (1, 2, 3):
        await aredis.xadd(names[0], stream_entry(generation_id, hint_index=generation_id - 1))

    mine = await first.claim_new(count=2, block_ms=100)
    theirs = await second.claim_new(count=5, block_ms=100)
    assert [e.generation_id for e in mine] == [1, 2]
    assert [e.generation_id for e in theirs] == [3]
    assert theirs[0].hint_index == 2
    assert await first.depth() == {"waiting": 0, "pending": 3}

    for entry in mine + theirs:
        await first.ack(entry.entry_id)
    assert await first.depth() == {"waiting": 0, "pending": 0}
    assert await first.claim_new(count=5, block_ms=50) == []


async def test_a_dead_consumers_entries_are_reclaimed_after_min_idle(aredis, names):
    dead = _queue(aredis, names, "dead", min_idle_ms=200)
    alive = _queue(aredis, names, "alive", min_idle_ms=200)
    await dead.ensure_group()
    await aredis.xadd(names[0], stream_entry(10, prompt_text="typed by a student"))
    (claimed,) = await dead.claim_new(count=1, block_ms=100)

    runnable, exhausted = await alive.reclaim_stale(count=5)
    assert runnable == [] and exhausted == []  # not idle long enough yet

    await asyncio.sleep(0.3)
    runnable, exhausted = await alive.reclaim_stale(count=5)
    assert [(e.generation_id, e.prompt_text, e.deliveries) for e in runnable] == [
        (10, "typed by a student", 2)
    ]
    assert exhausted == []
    pending = await aredis.xpending_range(names[0], names[1], min="-", max="+", count=5)
    assert [p["consumer"] for p in pending] == ["alive"]
    assert runnable[0].entry_id == claimed.entry_id


async def test_touch_keeps_a_live_workers_entry(aredis, names):
    worker = _queue(aredis, names, "busy", min_idle_ms=300)
    other = _queue(aredis, names, "other", min_idle_ms=300)
    await worker.ensure_group()
    await aredis.xadd(names[0], stream_entry(5))
    (entry,) = await worker.claim_new(count=1, block_ms=100)
    for _ in range(4):
        await asyncio.sleep(0.15)
        await worker.touch([entry.entry_id])
    assert await other.reclaim_stale(count=5) == ([], [])


async def test_an_entry_delivered_too_often_is_given_up(aredis, names):
    queues = [_queue(aredis, names, f"w{i}", min_idle_ms=50, max_deliveries=2) for i in range(3)]
    await queues[0].ensure_group()
    await aredis.xadd(names[0], stream_entry(99))
    assert len(await queues[0].claim_new(count=1, block_ms=100)) == 1  # delivery 1
    await asyncio.sleep(0.1)
    runnable, exhausted = await queues[1].reclaim_stale(count=5)  # delivery 2
    assert len(runnable) == 1 and exhausted == []
    await asyncio.sleep(0.1)
    runnable, exhausted = await queues[2].reclaim_stale(count=5)  # delivery 3 > 2
    assert runnable == []
    assert [(e.generation_id, e.deliveries) for e in exhausted] == [(99, 3)]


async def test_malformed_entries_are_acknowledged_and_skipped(aredis, names):
    queue = _queue(aredis, names, "w")
    await queue.ensure_group()
    await aredis.xadd(names[0], {"generation_id": "not a number"})
    await aredis.xadd(names[0], stream_entry(4))
    entries = await queue.claim_new(count=5, block_ms=100)
    assert [e.generation_id for e in entries] == [4]
    assert (await queue.depth())["pending"] == 1


async def test_a_deleted_group_is_recreated(aredis, names):
    queue = _queue(aredis, names, "w")
    await queue.ensure_group()
    await aredis.delete(names[0])
    assert await queue.claim_new(count=1, block_ms=10) == []
    with pytest.raises(redis.ResponseError, match="BUSYGROUP"):
        await aredis.xgroup_create(names[0], names[1], id="0")
