"""The durable generation queue: a Redis Stream that the site appends to and the workers consume.

The site adds one entry per generation (`enqueue_generation`, synchronous, called on commit). Every
inference worker reads through one consumer group (`RequestQueue`, asyncio): `claim_new` hands out
entries nobody has seen, an entry stays pending until the worker `ack`s it after the result is stored,
and `reclaim_stale` takes over entries whose worker has been silent for `min_idle_ms` (a crashed or
killed worker). A live worker calls `touch` on its own entries every heartbeat so that a long
generation is never mistaken for an abandoned one. Entries that keep coming back (the worker dies
every time it runs them) are handed out at most `max_deliveries` times.
"""

from dataclasses import dataclass

import redis
import redis.asyncio as aioredis

from inference_contract.protocol import GENERATION_GROUP, GENERATION_STREAM, stream_entry

# The stream is trimmed (approximately) to this many entries; acknowledged history is not needed.
STREAM_MAX_LENGTH = 100_000


def enqueue_generation(
    client: redis.Redis,
    *,
    generation_id: int,
    prompt_text: str | None = None,
    hint_index: int | None = None,
    kind: str | None = None,
) -> str:
    """Append a generation request to the stream; returns the entry id."""
    return client.xadd(
        GENERATION_STREAM,
        stream_entry(generation_id, prompt_text, hint_index, kind),
        maxlen=STREAM_MAX_LENGTH,
        approximate=True,
    )


async def enqueue_generation_async(
    client: aioredis.Redis,
    *,
    generation_id: int,
    prompt_text: str | None = None,
    hint_index: int | None = None,
    kind: str | None = None,
    stream: str = GENERATION_STREAM,
) -> str:
    """`enqueue_generation` for the worker (hands a generation back to the queue)."""
    return await client.xadd(
        stream,
        stream_entry(generation_id, prompt_text, hint_index, kind),
        maxlen=STREAM_MAX_LENGTH,
        approximate=True,
    )


@dataclass(frozen=True)
class QueueEntry:
    entry_id: str
    generation_id: int
    prompt_text: str | None
    hint_index: int | None = None
    kind: str | None = None
    deliveries: int = 1


def _entry(entry_id: str, fields: dict, deliveries: int = 1) -> QueueEntry | None:
    try:
        generation_id = int(fields["generation_id"])
        hint_index = int(fields["hint_index"]) if fields.get("hint_index") else None
    except (KeyError, TypeError, ValueError):
        return None
    return QueueEntry(
        entry_id=entry_id,
        generation_id=generation_id,
        prompt_text=fields.get("prompt_text") or None,
        hint_index=hint_index,
        kind=fields.get("kind") or None,
        deliveries=deliveries,
    )


class RequestQueue:
    """One worker's view of the consumer group (redis.asyncio, decode_responses=True)."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        consumer: str,
        min_idle_ms: int = 30_000,
        max_deliveries: int = 3,
        stream: str = GENERATION_STREAM,
        group: str = GENERATION_GROUP,
    ) -> None:
        self.client = client
        self.consumer = consumer
        self.min_idle_ms = min_idle_ms
        self.max_deliveries = max_deliveries
        self.stream = stream
        self.group = group
        self._reclaim_cursor = "0-0"

    async def ensure_group(self) -> None:
        """Create the stream and the group if needed (id 0: entries added before any worker ran
        are served too)."""
        try:
            await self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def claim_new(self, *, count: int, block_ms: int) -> list[QueueEntry]:
        """Entries no worker has seen yet, waiting up to block_ms for the first one."""
        if count <= 0:
            return []
        try:
            reply = await self.client.xreadgroup(
                self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms
            )
        except redis.ResponseError as exc:
            # The stream or group was deleted under us (a flushed Redis): recreate and retry later.
            if "NOGROUP" not in str(exc):
                raise
            await self.ensure_group()
            return []
        entries: list[QueueEntry] = []
        for _stream, items in reply or []:
            for entry_id, fields in items:
                entry = _entry(entry_id, fields)
                if entry is None:
                    await self.ack(entry_id)  # malformed: nothing anyone could do with it
                else:
                    entries.append(entry)
        return entries

    async def reclaim_stale(self, *, count: int) -> tuple[list[QueueEntry], list[QueueEntry]]:
        """Take over entries pending longer than min_idle_ms on another (dead) consumer.

        Returns (entries to run, entries delivered too often). The caller fails the second list and
        acks it, so a request that kills every worker does not kill them all in turn forever.
        """
        if count <= 0:
            return [], []
        try:
            reply = await self.client.xautoclaim(
                self.stream,
                self.group,
                self.consumer,
                min_idle_time=self.min_idle_ms,
                start_id=self._reclaim_cursor,
                count=count,
            )
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self.ensure_group()
            return [], []
        self._reclaim_cursor, items = reply[0], reply[1]
        deleted = reply[2] if len(reply) > 2 else []
        if deleted:
            await self.client.xack(self.stream, self.group, *deleted)
        runnable: list[QueueEntry] = []
        exhausted: list[QueueEntry] = []
        for entry_id, fields in items:
            if fields is None:
                await self.ack(entry_id)
                continue
            deliveries = await self._deliveries(entry_id)
            entry = _entry(entry_id, fields, deliveries)
            if entry is None:
                await self.ack(entry_id)
            elif deliveries > self.max_deliveries:
                exhausted.append(entry)
            else:
                runnable.append(entry)
        return runnable, exhausted

    async def _deliveries(self, entry_id: str) -> int:
        pending = await self.client.xpending_range(
            self.stream, self.group, min=entry_id, max=entry_id, count=1
        )
        return int(pending[0]["times_delivered"]) if pending else 1

    async def touch(self, entry_ids: list[str]) -> None:
        """Reset the idle time of our own pending entries (XCLAIM to ourselves, JUSTID: the
        delivery counter is not incremented)."""
        if entry_ids:
            await self.client.xclaim(
                self.stream, self.group, self.consumer, 0, entry_ids, justid=True
            )

    async def ack(self, entry_id: str) -> None:
        await self.client.xack(self.stream, self.group, entry_id)

    async def depth(self) -> dict[str, int]:
        """Entries waiting for any worker and entries claimed but not yet acknowledged."""
        for group in await self.client.xinfo_groups(self.stream):
            if group["name"] == self.group:
                return {"waiting": int(group.get("lag") or 0), "pending": int(group["pending"])}
        return {"waiting": 0, "pending": 0}
