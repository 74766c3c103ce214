"""The replay buffer on a real Redis: appends, consistent snapshots, restart after a crash."""

import pytest
import redis

from worker.inference.replay import ReplayAppend, ReplayWriter, read_replay, read_replay_async

pytestmark = pytest.mark.integration


@pytest.fixture
def generation_id():
    # Far above any id the database hands out in a test run.
    import random

    return random.randint(10**9, 2 * 10**9)


async def test_appends_build_the_text_and_the_sequence(aredis, redis_test_url, generation_id):
    writer = ReplayWriter(aredis, ttl_seconds=60)
    assert await writer.start(generation_id, model_version="v1") == 0
    await writer.append(generation_id, seq=1, reasoning="Add ")
    await writer.append(generation_id, seq=3, reasoning="the tens.", answer="The sum")
    await writer.append(generation_id, seq=4, answer=" is 85.")

    snapshot = await read_replay_async(aredis, generation_id)
    assert (snapshot.seq, snapshot.reasoning, snapshot.answer) == (
        4,
        "Add the tens.",
        "The sum is 85.",
    )
    assert (snapshot.status, snapshot.model_version) == ("running", "v1")

    await writer.finish(generation_id, status="done")
    sync_client = redis.Redis.from_url(redis_test_url, decode_responses=True)
    assert read_replay(sync_client, generation_id).status == "done"
    assert 0 < await aredis.ttl(f"ringtutor:generation:{generation_id}:answer") <= 60


async def test_a_restart_empties_the_text_and_keeps_counting(aredis, generation_id):
    writer = ReplayWriter(aredis, ttl_seconds=60)
    await writer.start(generation_id, model_version="v1")
    await writer.append(generation_id, seq=7, reasoning="half an answer from a dead worker")

    assert await writer.start(generation_id, model_version="v2") == 7
    snapshot = await read_replay_async(aredis, generation_id)
    assert (snapshot.seq, snapshot.reasoning, snapshot.answer) == (7, "", "")
    assert snapshot.model_version == "v2"


async def test_an_unknown_generation_has_an_empty_snapshot(aredis, generation_id):
    snapshot = await read_replay_async(aredis, generation_id)
    assert not snapshot.exists
    assert (snapshot.seq, snapshot.reasoning, snapshot.answer) == (0, "", "")


async def test_one_flush_appends_to_several_generations_at_once(aredis, generation_id):
    writer = ReplayWriter(aredis, ttl_seconds=60)
    other = generation_id + 1
    for gid in (generation_id, other):
        await writer.start(gid, model_version="v1")
    await writer.append_many(
        [
            ReplayAppend(generation_id, seq=2, reasoning="first ", answer=""),
            ReplayAppend(other, seq=5, reasoning="", answer="second"),
        ]
    )
    first = await read_replay_async(aredis, generation_id)
    second = await read_replay_async(aredis, other)
    assert (first.seq, first.reasoning, first.answer) == (2, "first ", "")
    assert (second.seq, second.reasoning, second.answer) == (5, "", "second")
