"""Each generation's events, in order, in a Redis Stream of its own: the fan-out and the replay.

The worker appends every event of a generation (`status`, `snapshot`, `delta`, `error`, `done`) to
the stream `ringtutor:generation:<id>:events`, one entry per flush (`{"e": "<JSON list of
events>"}`); the site appends the few it produces itself (`done` of a generation cancelled while
queued, `status` of one handed back). A page's socket reads the stream: on connect everything so far
(folded into one `snapshot`), then each new entry with a blocking `XREAD` from the last id it saw.

Why a stream and not the Channels group per delta: one `XADD` per message instead of a
`group_send` (three round trips and a script, and a message silently dropped when the receiving
process's queue is over capacity); the order of a generation's events is the stream's order, so
`done` can never overtake a delta; and the replay a reconnecting page needs is the same stream,
read from the start, so nothing can be in one and not in the other. The stream expires an hour
after the generation's last event; the row stays the source of truth.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis
import redis.asyncio as aioredis

from inference_contract.protocol import EVENT_LOG_TTL_SECONDS, event_log_key

if TYPE_CHECKING:
    from collections.abc import Iterable

EVENTS_FIELD = "e"


@dataclass
class LogSnapshot:
    """A generation's events folded the way a page applies them."""

    last_id: str = "0-0"
    seq: int = 0
    reasoning: str = ""
    answer: str = ""
    status: str = ""
    model_version: str = ""
    done: dict | None = None

    def apply(self, entry_id: str, events: list[dict]) -> None:
        self.last_id = entry_id
        for event in events:
            kind = event["type"]
            if kind == "snapshot":
                # A re-run after a crash starts over (empty texts, numbering continues).
                self.seq = event["seq"]
                self.reasoning, self.answer = event["reasoning"], event["answer"]
                self.model_version = event.get("model_version") or self.model_version
            elif kind == "delta" and event["seq"] > self.seq:
                self.seq = event["seq"]
                if event["channel"] == "reasoning":
                    self.reasoning += event["text"]
                else:
                    self.answer += event["text"]
            elif kind == "status":
                self.status = event["status"]
                self.model_version = event.get("model_version") or self.model_version
            elif kind == "done":
                self.done = event
                self.status = event["status"]
                self.seq = max(self.seq, event.get("seq") or 0)


def decode(entries: Iterable[tuple[str, dict[str, str]]]) -> list[tuple[str, list[dict]]]:
    """(entry id, events) of raw stream entries."""
    return [(entry_id, json.loads(fields[EVENTS_FIELD])) for entry_id, fields in entries]


def fold(
    entries: Iterable[tuple[str, dict[str, str]]], snapshot: LogSnapshot | None = None
) -> LogSnapshot:
    snapshot = snapshot or LogSnapshot()
    for entry_id, events in decode(entries):
        snapshot.apply(entry_id, events)
    return snapshot


def read_log(client: redis.Redis, generation_id: int) -> LogSnapshot:
    """Everything the generation has sent so far (synchronous; the site's side)."""
    return fold(client.xrange(event_log_key(generation_id)))


async def read_log_async(client: aioredis.Redis, generation_id: int) -> LogSnapshot:
    return fold(await client.xrange(event_log_key(generation_id)))


def _entry(events: list[dict]) -> dict[str, str]:
    return {EVENTS_FIELD: json.dumps(events, separators=(",", ":"))}


def append_events(client: redis.Redis, generation_id: int, events: list[dict]) -> None:
    """Append events from the site (synchronous), in one round trip."""
    key = event_log_key(generation_id)
    with client.pipeline(transaction=False) as pipe:
        pipe.xadd(key, _entry(events))
        pipe.expire(key, EVENT_LOG_TTL_SECONDS)
        pipe.execute()


class EventLogWriter:
    """The worker's side (redis.asyncio with decode_responses=True)."""

    def __init__(self, client: aioredis.Redis, *, ttl_seconds: int = EVENT_LOG_TTL_SECONDS) -> None:
        self.client = client
        self.ttl_seconds = ttl_seconds

    async def last_seq(self, generation_id: int) -> int:
        """The last delta number already sent (a re-claimed generation keeps counting after the
        dead worker's last delta, so pages can tell its new deltas from the old ones)."""
        return (await read_log_async(self.client, generation_id)).seq

    async def append(self, generation_id: int, events: list[dict], *, expire: bool = False) -> None:
        await self.append_many([(generation_id, events)], expire=expire)

    async def append_many(
        self, items: list[tuple[int, list[dict]]], *, expire: bool = False
    ) -> None:
        """One entry per generation, all in one round trip (one flush tick). `expire` refreshes
        the TTL too (the first and the last write of a generation do)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for generation_id, events in items:
                key = event_log_key(generation_id)
                pipe.xadd(key, _entry(events))
                if expire:
                    pipe.expire(key, self.ttl_seconds)
            await pipe.execute()
