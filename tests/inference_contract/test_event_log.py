"""The generation event log on a real Redis: appends in order, one consistent fold, restarts."""

import redis

from inference_contract.event_log import EventLogWriter, append_events, read_log, read_log_async
from webapp.tutoring import events


async def test_a_fold_is_what_a_page_rebuilds(aredis, redis_test_url):
    generation_id = 990_001
    writer = EventLogWriter(aredis, ttl_seconds=60)
    await aredis.delete(f"ringtutor:generation:{generation_id}:events")
    await writer.append(generation_id, [events.status_running(model_version="v1")], expire=True)
    await writer.append_many(
        [
            (generation_id, [events.delta(seq=1, channel="reasoning", text="Half is ")]),
            (generation_id, [events.delta(seq=2, channel="reasoning", text="3/6.")]),
        ]
    )
    # A copy written twice (a pipeline resent after a dropped connection) counts once.
    await writer.append(generation_id, [events.delta(seq=2, channel="reasoning", text="3/6.")])
    await writer.append(generation_id, [events.delta(seq=3, channel="answer", text="5/6")])

    log = await read_log_async(aredis, generation_id)
    assert (log.seq, log.reasoning, log.answer, log.status) == (3, "Half is 3/6.", "5/6", "running")
    assert log.model_version == "v1" and log.done is None
    assert await writer.last_seq(generation_id) == 3
    assert 0 < await aredis.ttl(f"ringtutor:generation:{generation_id}:events") <= 60

    # A re-run after a crash starts over from an empty snapshot and keeps counting.
    await writer.append(
        generation_id,
        [events.snapshot(seq=3, reasoning="", answer="", status="running", model_version="v1")],
    )
    await writer.append(generation_id, [events.delta(seq=4, channel="reasoning", text="Again")])
    # The site's own events (a synchronous client) land in the same log, in order.
    sync_client = redis.Redis.from_url(redis_test_url, decode_responses=True)
    append_events(sync_client, generation_id, [events.done(status="done", seq=4)])
    log = read_log(sync_client, generation_id)
    sync_client.close()
    assert (log.seq, log.reasoning, log.answer, log.status) == (4, "Again", "", "done")
    assert log.done["seq"] == 4
