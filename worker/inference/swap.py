"""The worker's engines and the blue/green swap between them.

`BlueGreen.engine` serves new requests. A swap verifies and loads the new checkpoint with ringmodel
(in a thread: a corrupt file is refused in under a second), starts a second engine, checks it
against ringmodel (`engine_check`), then points new requests at it; the old engine finishes what
it started (up to `drain_timeout_s`; past that its requests go back to the queue) and is shut
down. Every generation is pinned to the engine it started on, so no answer mixes two versions.
A checkpoint that fails any step leaves the worker on the old one and is reported (heartbeat
`last_swap_error`, the swap-result channel and log, the worker's log).

Swaps are asked for by a control message (`request`) or by the reconcile loop, which compares the
served version with the registry's champion every `reconcile_interval_s` in case a message was
missed (a refused target is not retried until it is broadcast again). Requests that arrive during
a swap are coalesced: the latest wins.
"""

import asyncio
import gc
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from inference_contract.protocol import SWAP_LOG_KEY, SWAP_LOG_LENGTH, swap_result_channel
from worker.inference import records
from worker.inference.config import EngineSettings
from worker.inference.db_calls import db_call
from worker.inference.engine import Engine, ModelSpec
from worker.inference.engine_check import CheckReport, check_engine
from worker.inference.generation_run import AbortReason
from worker.inference.heartbeat import now_iso

if TYPE_CHECKING:
    from worker.inference.worker import InferenceWorker

logger = logging.getLogger(__name__)

EngineFactory = Callable[[ModelSpec, EngineSettings], Awaitable[Engine]]
EngineChecker = Callable[[Engine, ModelSpec], Awaitable[CheckReport]]


class EngineRefused(Exception):
    """A new engine did not pass its check against ringmodel."""


class BlueGreen:
    def __init__(
        self,
        worker: "InferenceWorker",
        *,
        engine_factory: EngineFactory,
        reference_loader: Callable[[str], Any],
        engine_checker: EngineChecker | None,
    ) -> None:
        self.worker = worker
        self.config = worker.config
        self.engine_factory = engine_factory
        self.reference_loader = reference_loader
        self.engine_checker = engine_checker
        self.engine: Engine | None = None
        self.retiring: set[Engine] = set()
        # The swap in progress (for the heartbeat), the next one asked for, the last result, and
        # the targets that were refused (the reconcile loop does not retry those by itself).
        self.status: dict | None = None
        self._spec: ModelSpec | None = None
        self._next: ModelSpec | None = None
        self._task: asyncio.Task | None = None
        self.last_swap: dict | None = None
        self.last_swap_error = ""
        self._refused: set[tuple[int | None, str]] = set()

    async def start_checked_engine(self, spec: ModelSpec) -> Engine:
        """Load with ringmodel (refuses corrupt files early), start the engine, check it."""
        self._set_phase(spec, "verifying checkpoint")
        reference = await asyncio.to_thread(self.reference_loader, spec.path)
        self._set_phase(spec, "starting engine")
        engine = await self.engine_factory(spec, self.config.engine)
        try:
            self._set_phase(spec, "checking engine")
            if self.engine_checker is not None:
                report = await self.engine_checker(engine, spec)
            else:
                report = await check_engine(
                    engine, reference, tolerance=self.config.check_tolerance
                )
            if not report.ok:
                raise EngineRefused(f"engine check failed: {report.summary()}")
        except BaseException:
            await engine.shutdown()
            raise
        finally:
            del reference
        return engine

    def _set_phase(self, spec: ModelSpec, phase: str) -> None:
        logger.info("%s: %s", spec.label, phase)
        if self.status is not None:
            self.status["phase"] = phase

    def request(self, spec: ModelSpec, *, explicit: bool) -> None:
        """Queue a swap to `spec`; the latest request wins while one is in progress."""
        if explicit:
            self._refused.discard((spec.model_version_id, spec.path))
        if self._spec == spec:
            return  # already on its way
        self._next = spec
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._swap_worker(), name="swap")

    def cancel(self) -> None:
        """Stop a swap in progress (shutdown)."""
        if self._task is not None:
            self._task.cancel()

    async def _swap_worker(self) -> None:
        while self._next is not None and not self.worker.stopping:
            spec, self._next = self._next, None
            await self._swap_to(spec)

    async def _swap_to(self, spec: ModelSpec) -> None:
        current = self.engine.spec
        if current == spec:
            await self._report(spec, ok=True, seconds=0.0, note="already serving it")
            return
        began = time.monotonic()
        self.status = {"to": spec.label, "started_at": now_iso(), "phase": "queued"}
        self._spec = spec
        logger.info("swap %s -> %s (%s) begins", current.label, spec.label, spec.path)
        await self.worker.heartbeat.beat()
        try:
            new_engine = await self.start_checked_engine(spec)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure leaves the old engine serving
            reason = f"{type(exc).__name__}: {exc}"[:500]
            logger.error("swap to %s (%s) refused: %s", spec.label, spec.path, reason)
            self._refused.add((spec.model_version_id, spec.path))
            self.last_swap_error = f"{spec.label}: {reason}"
            self.status = self._spec = None
            await self._report(spec, ok=False, seconds=time.monotonic() - began, error=reason)
            return
        old, self.engine = self.engine, new_engine
        self.status = self._spec = None
        if self.config.freeze_gc:
            gc.freeze()  # the new engine's objects too (no collection: it would stall the loop)
        self.last_swap_error = ""
        seconds = time.monotonic() - began
        logger.info(
            "now serving %s (swap took %.1f s); %s finishes %d request(s)",
            spec.label,
            seconds,
            old.spec.label,
            old.in_flight,
        )
        await self._report(spec, ok=True, seconds=seconds)
        self.retiring.add(old)
        self.worker.spawn(self._retire(old)).set_name(f"retire-{old.spec.label}")

    async def _retire(self, engine: Engine) -> None:
        """Let the old engine finish its answers, then shut it down."""
        try:
            if not await engine.wait_idle(self.config.drain_timeout_s):
                for running in list(self.worker.running.values()):
                    if running.engine is engine:
                        await running.abort(AbortReason.REQUEUE)
                await engine.wait_idle(30)
            await engine.shutdown()
        finally:
            self.retiring.discard(engine)

    async def _report(
        self, spec: ModelSpec, *, ok: bool, seconds: float, error: str = "", note: str = ""
    ) -> None:
        result = {
            "worker_id": self.worker.worker_id,
            "model_version_id": spec.model_version_id,
            "label": spec.label,
            "path": spec.path,
            "ok": ok,
            "error": error,
            "note": note,
            "seconds": round(seconds, 2),
            "finished_at": now_iso(),
        }
        self.last_swap = result
        payload = json.dumps(result)
        try:
            async with self.worker.redis.pipeline(transaction=False) as pipe:
                pipe.publish(swap_result_channel(self.worker.redis), payload)
                pipe.lpush(SWAP_LOG_KEY, payload)
                pipe.ltrim(SWAP_LOG_KEY, 0, SWAP_LOG_LENGTH - 1)
                await pipe.execute()
            await self.worker.heartbeat.beat()
        except Exception:  # noqa: BLE001 - the log line above already has it
            logger.warning("could not publish the swap result", exc_info=True)

    async def reconcile_loop(self) -> None:
        interval = self.config.reconcile_interval_s
        if interval <= 0:
            return
        while True:
            await asyncio.sleep(interval)
            try:
                champion = await db_call(records.champion_spec)()
            except Exception:  # noqa: BLE001 - the database may blink; try next time
                logger.warning("reading the champion failed", exc_info=True)
                continue
            if (
                champion is not None
                and champion != self.engine.spec
                and (champion.model_version_id, champion.path) not in self._refused
                and self._spec is None
                and self._next is None
            ):
                logger.info("the registry's champion is %s: swapping to it", champion.label)
                self.request(champion, explicit=False)
