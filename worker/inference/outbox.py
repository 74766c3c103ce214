"""What the worker writes to the generations' event logs (event_log.py), which pages follow.

- the flush loop: every `flush_period_s` the text that arrived since the last tick becomes
  numbered `reasoning` / `answer` deltas, one log entry per stream, all streams in one pipelined
  round trip;
- `flush`: one stream at once (its first visible text, a large backlog, its end);
- `send`: single events (status, snapshot, error, done).

A write that fails (Redis down past the client's retries) never fails the answer: deltas are kept
on the generation and written first on the next tick (a copy that did arrive is dropped by its
`seq`), and a lost `done` makes pages fall back on the stored row.
"""

import asyncio
import logging
from typing import TYPE_CHECKING

from inference_contract.event_log import EventLogWriter
from webapp.tutoring import events
from worker.inference.config import WorkerConfig
from worker.inference.streaming import Delta

if TYPE_CHECKING:
    from worker.inference.generation_run import GenerationRun

logger = logging.getLogger(__name__)


def flush_period_s(config: WorkerConfig, streams: int) -> float:
    """The flush period: flush_interval_ms, stretched so that `streams` streams together stay
    within max_messages_per_s."""
    shortest = config.flush_interval_ms / 1000
    return max(shortest, streams / max(1, config.max_messages_per_s))


def delta_events(deltas: list[Delta]) -> list[dict]:
    return [events.delta(seq=d.seq, channel=d.channel, text=d.text) for d in deltas]


class Outbox:
    def __init__(
        self, log: EventLogWriter, config: WorkerConfig, running: "dict[int, GenerationRun]"
    ) -> None:
        self.log = log
        self.config = config
        # The generations being streamed, by id (the worker's own dict, shared).
        self.running = running

    async def flush_loop(self) -> None:
        while True:
            await asyncio.sleep(flush_period_s(self.config, len(self.running)))
            dirty = [r for r in self.running.values() if r.dirty]
            if dirty:
                try:
                    await self.flush_many(dirty)
                except Exception:  # noqa: BLE001 - the text stays pending; the next tick retries
                    logger.warning("flushing deltas failed", exc_info=True)

    async def flush_many(self, dirty: "list[GenerationRun]") -> None:
        """One tick: every stream's new deltas, one log entry per stream, all in one round trip.
        A stream being flushed inline right now is left for the next tick."""
        held: list[tuple[GenerationRun, list[Delta]]] = []
        try:
            for running in dirty:
                if running.lock.locked():
                    continue
                await running.lock.acquire()
                deltas = running.take_deltas()
                if deltas:
                    held.append((running, deltas))
                else:
                    running.lock.release()
            if not held:
                return
            try:
                await self.log.append_many(
                    [(r.generation_id, delta_events(deltas)) for r, deltas in held]
                )
            except Exception:
                # Written again, first, on the next tick; a copy that did arrive is dropped by
                # its sequence number.
                for running, deltas in held:
                    running.unsent = deltas
                raise
        finally:
            for running, _ in held:
                running.lock.release()

    async def flush(self, running: "GenerationRun") -> None:
        """Flush one stream now (its first text, a large backlog, its end). A failure is logged
        and the deltas kept for the next tick: the answer goes on, and the stored row (which
        `done` tells pages to fall back on) has the whole text anyway."""
        async with running.lock:
            deltas = running.take_deltas()
            if not deltas:
                return
            try:
                await self.log.append(running.generation_id, delta_events(deltas))
            except Exception:  # noqa: BLE001 - Redis down past the client's retries
                running.unsent = deltas
                logger.warning(
                    "generation %s: writing deltas failed; retrying on the next tick",
                    running.generation_id,
                    exc_info=True,
                )

    async def send(self, generation_id: int, *sent: dict, expire: bool = False) -> None:
        """Append events to the generation's log (one entry, one round trip)."""
        try:
            await self.log.append(generation_id, list(sent), expire=expire)
        except Exception:  # noqa: BLE001 - pages fall back on the row when `done` is missing
            logger.warning(
                "sending %s to generation %s failed",
                [event["type"] for event in sent],
                generation_id,
                exc_info=True,
            )
