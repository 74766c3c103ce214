"""The inference worker: claims generation requests, streams them from vLLM, swaps checkpoints.

One asyncio program around one serving engine (two during a swap). `InferenceWorker` starts the
pieces and owns the claim and control loops; every other part lives in a module of its own:

- claim loop (here): takes entries from the Redis Stream consumer group (new ones, and ones left
  pending by a dead worker), up to the engine's batch size; each becomes a `GenerationRun`
  (generation_run.py), a task that streams one generation through the shared engine (continuous
  batching);
- flush loop (outbox.py): every `flush_interval_ms` turns the text that arrived into numbered
  `reasoning` / `answer` deltas and appends them to each generation's event log (event_log.py),
  which pages follow;
- control loop (here): Redis pub/sub for swap messages and cancel requests (cancel aborts the
  request inside the engine);
- heartbeat loop (heartbeat.py): the worker's state under `HEARTBEAT_PREFIX + worker_id`, and a
  touch on the stream entries it is working on so nobody mistakes a long answer for an abandoned
  one;
- swaps and the reconcile loop (swap.py): blue/green to a checked new engine, and catching up
  with the registry's champion if a swap message was missed.
"""

import asyncio
import contextlib
import gc
import json
import logging
import os
from collections.abc import Callable, Coroutine
from typing import Any

import redis.asyncio as aioredis
from django.db import connections

from inference_contract.event_log import EventLogWriter
from inference_contract.protocol import cancel_channel, control_channel
from inference_contract.redis_retry import async_retry_options
from inference_contract.request_queue import QueueEntry, RequestQueue
from inference_contract.worker_registry import heartbeat_remove
from webapp.tutoring import events
from webapp.tutoring.models import GenerationStatus
from worker.inference import records
from worker.inference.config import WorkerConfig
from worker.inference.db_calls import db_call
from worker.inference.engine import Engine, ModelSpec, VllmEngine
from worker.inference.engine_check import load_reference
from worker.inference.generation_run import AbortReason, GenerationRun
from worker.inference.heartbeat import Heartbeat, WorkerStats
from worker.inference.outbox import Outbox, flush_period_s
from worker.inference.swap import BlueGreen, EngineChecker, EngineFactory

logger = logging.getLogger(__name__)

WORKER_LOST_MESSAGE = (
    "This request stopped the tutor's model several times, so it was given up. "
    "Please try rephrasing the problem."
)


class InferenceWorker:
    def __init__(
        self,
        config: WorkerConfig,
        *,
        engine_factory: EngineFactory = VllmEngine.start,
        reference_loader: Callable[[str], Any] = load_reference,
        engine_checker: EngineChecker | None = None,
        redis_client: aioredis.Redis | None = None,
    ) -> None:
        self.config = config
        self.worker_id = config.worker_id
        self.redis = redis_client or aioredis.Redis.from_url(
            config.redis_url,
            decode_responses=True,
            health_check_interval=30,
            **async_retry_options(),
        )
        self.queue = RequestQueue(
            self.redis,
            consumer=self.worker_id,
            min_idle_ms=config.claim_min_idle_ms,
            max_deliveries=config.max_deliveries,
            stream=config.stream,
            group=config.group,
        )
        self.log = EventLogWriter(self.redis)
        self.state = "starting"
        self.stopping = False
        # The generations streaming now, from their claim to their end.
        self.running: dict[int, GenerationRun] = {}
        self.tasks: set[asyncio.Task] = set()
        self._slot_free = asyncio.Event()
        self.outbox = Outbox(self.log, config, self.running)
        self.stats = WorkerStats()
        self.heartbeat = Heartbeat(self)
        self.swap = BlueGreen(
            self,
            engine_factory=engine_factory,
            reference_loader=reference_loader,
            engine_checker=engine_checker,
        )

    @property
    def engine(self) -> Engine | None:
        """The engine new requests go to."""
        return self.swap.engine

    @property
    def last_swap(self) -> dict | None:
        return self.swap.last_swap

    def request_swap(self, spec: ModelSpec, *, explicit: bool) -> None:
        self.swap.request(spec, explicit=explicit)

    def flush_period_s(self) -> float:
        return flush_period_s(self.config, len(self.running))

    # --- lifecycle --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set, then hand unfinished work back and exit."""
        await self.queue.ensure_group()
        heartbeat = asyncio.create_task(self.heartbeat.loop(), name="heartbeat")
        try:
            spec = await self._initial_spec()
            logger.info("worker %s starting on %s (%s)", self.worker_id, spec.label, spec.path)
            self.swap.engine = await self.swap.start_serving(spec)
            # torch, vLLM and Django leave millions of long-lived objects; a full collection that
            # scans them stalls the event loop (and every stream) for up to a second. Collect
            # once now and move them out of the collector's way, as vLLM's own server does.
            if self.config.freeze_gc:
                gc.collect()
                gc.freeze()
            self.state = "serving"
            await self.heartbeat.beat()
            logger.info("worker %s serving %s", self.worker_id, spec.label)
            loops = [
                self._claim_loop(),
                self.outbox.flush_loop(),
                self._control_loop(),
                self.swap.reconcile_loop(),
            ]
            for loop in loops:
                self.spawn(loop)
            await stop.wait()
        finally:
            await self._shutdown()
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            with contextlib.suppress(Exception):
                await heartbeat_remove(self.redis, self.worker_id)
            await self.redis.aclose()
            await db_call(connections.close_all)()

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task:
        """A task the worker keeps track of (a failure is logged; shutdown cancels or awaits it)."""
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("worker task %s died", task.get_name(), exc_info=task.exception())

    async def _shutdown(self, grace_s: float = 20.0) -> None:
        self.stopping = True
        self.state = "stopping"
        with contextlib.suppress(Exception):
            await self.heartbeat.beat()
        generation_tasks = [t for t in self.tasks if t.get_name().startswith("generation-")]
        for task in list(self.tasks):
            if task not in generation_tasks:
                task.cancel()
        self.swap.cancel()
        if generation_tasks:
            # Let short answers finish; hand the rest back to the queue for another worker.
            _, pending = await asyncio.wait(generation_tasks, timeout=grace_s)
            for running in list(self.running.values()):
                await running.abort(AbortReason.REQUEUE)
            if pending:
                await asyncio.wait(pending, timeout=10)
        for engine in [self.swap.engine, *self.swap.retiring]:
            if engine is not None:
                with contextlib.suppress(Exception):
                    await engine.shutdown()

    async def _initial_spec(self) -> ModelSpec:
        champion = await db_call(records.champion_spec)()
        if champion is not None:
            return champion
        path = self.config.fallback_model
        registered = await db_call(records.model_version_for_path)(path)
        return registered or ModelSpec(
            model_version_id=None, label=os.path.basename(path.rstrip("/")) or path, path=path
        )

    # --- claiming ---------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        while not self.stopping:
            capacity = self.config.engine.max_num_seqs - len(self.running)
            if capacity <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            try:
                stale, exhausted = await self.queue.reclaim_stale(count=capacity)
                for entry in exhausted:
                    await self._give_up(entry)
                for entry in stale:
                    logger.info(
                        "re-claimed generation %s (delivery %s)",
                        entry.generation_id,
                        entry.deliveries,
                    )
                    self._start_generation(entry)
                capacity -= len(stale)
                if capacity > 0 and not self.stopping:
                    for entry in await self.queue.claim_new(count=capacity, block_ms=1000):
                        self._start_generation(entry)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep claiming after a Redis hiccup
                logger.exception("claiming from the queue failed")
                await asyncio.sleep(1.0)

    def _start_generation(self, entry: QueueEntry) -> None:
        if entry.generation_id in self.running:
            return  # already ours (a re-claim of our own entry)
        run = GenerationRun(self, entry, self.swap.engine)
        self.spawn(self._run_generation(run)).set_name(f"generation-{entry.generation_id}")

    async def _run_generation(self, run: GenerationRun) -> None:
        try:
            await run.run()
        finally:
            self._slot_free.set()

    async def _give_up(self, entry: QueueEntry) -> None:
        logger.error(
            "generation %s was delivered %s times; giving up",
            entry.generation_id,
            entry.deliveries,
        )
        if await db_call(records.generation_fail_unclaimed)(
            generation_id=entry.generation_id, error="worker lost repeatedly"
        ):
            await self.outbox.send(
                entry.generation_id,
                events.error(code="worker_lost", message=WORKER_LOST_MESSAGE),
                events.done(status=GenerationStatus.FAILED),
            )
        await self.queue.ack(entry.entry_id)

    # --- control: cancel and swap messages --------------------------------------------------

    async def _control_loop(self) -> None:
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(control_channel(self.redis), cancel_channel(self.redis))
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    if message["channel"] == cancel_channel(self.redis):
                        await self._on_cancel(message["data"])
                    else:
                        self._on_control(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - resubscribe after a lost connection
                logger.warning("control subscription lost; resubscribing", exc_info=True)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _on_cancel(self, data: str) -> None:
        try:
            generation_id = int(data)
        except ValueError:
            return
        running = self.running.get(generation_id)
        if running is not None:
            logger.info("cancelling generation %s", generation_id)
            await running.abort(AbortReason.CANCEL)

    def _on_control(self, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            logger.warning("ignoring a control message that is not JSON: %r", data[:200])
            return
        if message.get("type") != "swap" or not message.get("path"):
            logger.warning("ignoring control message %r", message)
            return
        spec = ModelSpec(
            model_version_id=message.get("model_version_id"),
            label=str(message.get("label") or os.path.basename(message["path"])),
            path=str(message["path"]),
        )
        self.swap.request(spec, explicit=True)
