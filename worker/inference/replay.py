"""The replay buffer of a running generation: what a late or reconnecting client starts from.

The worker appends every coalesced delta here *before* it sends the delta to the Channels group, in
one MULTI/EXEC with the delta's sequence number. A consumer that joins the group first and reads the
buffer second therefore misses nothing: every delta with a higher number is still on its way through
the group, and every delta with a lower or equal number is already in the buffer (it drops those).
Texts are plain Redis strings so a delta costs an APPEND, not a rewrite of the whole text.
"""

from dataclasses import dataclass

import redis
import redis.asyncio as aioredis

from worker.protocol import REPLAY_TTL_SECONDS, replay_keys


@dataclass(frozen=True)
class ReplaySnapshot:
    seq: int
    reasoning: str
    answer: str
    status: str
    model_version: str

    @property
    def exists(self) -> bool:
        return bool(self.status)


def read_replay(client: redis.Redis, generation_id: int) -> ReplaySnapshot:
    """The buffer as one consistent snapshot (synchronous; the site's side)."""
    reasoning_key, answer_key, meta_key = replay_keys(generation_id)
    with client.pipeline(transaction=True) as pipe:
        pipe.get(reasoning_key)
        pipe.get(answer_key)
        pipe.hgetall(meta_key)
        reasoning, answer, meta = pipe.execute()
    return _snapshot(reasoning, answer, meta)


async def read_replay_async(client: aioredis.Redis, generation_id: int) -> ReplaySnapshot:
    reasoning_key, answer_key, meta_key = replay_keys(generation_id)
    async with client.pipeline(transaction=True) as pipe:
        pipe.get(reasoning_key)
        pipe.get(answer_key)
        pipe.hgetall(meta_key)
        reasoning, answer, meta = await pipe.execute()
    return _snapshot(reasoning, answer, meta)


def _snapshot(reasoning, answer, meta) -> ReplaySnapshot:
    meta = meta or {}
    return ReplaySnapshot(
        seq=int(meta.get("seq") or 0),
        reasoning=reasoning or "",
        answer=answer or "",
        status=meta.get("status") or "",
        model_version=meta.get("model_version") or "",
    )


@dataclass(frozen=True)
class ReplayAppend:
    """New text of one generation: the deltas up to `seq`, joined per channel."""

    generation_id: int
    seq: int
    reasoning: str = ""
    answer: str = ""


class ReplayWriter:
    """The worker's side (redis.asyncio with decode_responses=True)."""

    def __init__(self, client: aioredis.Redis, *, ttl_seconds: int = REPLAY_TTL_SECONDS) -> None:
        self.client = client
        self.ttl_seconds = ttl_seconds

    async def start(self, generation_id: int, *, model_version: str) -> int:
        """Empty the texts for a (re)started run and return the last sequence number used.

        A generation re-claimed from a dead worker restarts from scratch; numbering continues after
        the dead worker's last delta so that clients, which already saw those numbers, can tell a
        new delta from an old one.
        """
        reasoning_key, answer_key, meta_key = replay_keys(generation_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hget(meta_key, "seq")
            pipe.delete(reasoning_key, answer_key)
            pipe.hset(meta_key, mapping={"status": "running", "model_version": model_version})
            pipe.expire(meta_key, self.ttl_seconds)
            last_seq, *_ = await pipe.execute()
        return int(last_seq or 0)

    async def append(
        self, generation_id: int, *, seq: int, reasoning: str = "", answer: str = ""
    ) -> None:
        await self.append_many([ReplayAppend(generation_id, seq, reasoning, answer)])

    async def append_many(self, items: list["ReplayAppend"]) -> None:
        """Append to several generations' buffers in one MULTI/EXEC (one round trip per flush
        tick however many answers are streaming)."""
        async with self.client.pipeline(transaction=True) as pipe:
            for item in items:
                reasoning_key, answer_key, meta_key = replay_keys(item.generation_id)
                if item.reasoning:
                    pipe.append(reasoning_key, item.reasoning)
                    pipe.expire(reasoning_key, self.ttl_seconds)
                if item.answer:
                    pipe.append(answer_key, item.answer)
                    pipe.expire(answer_key, self.ttl_seconds)
                pipe.hset(meta_key, "seq", item.seq)
            await pipe.execute()

    async def finish(self, generation_id: int, *, status: str) -> None:
        _, _, meta_key = replay_keys(generation_id)
        await self.client.hset(meta_key, "status", status)
