"""The worker's engines and the blue/green swap between them.

`BlueGreen.engine` serves new requests. A swap verifies and loads the new checkpoint with ringmodel
(in a thread: a corrupt file is refused in under a second), starts a second engine, checks it
against ringmodel (`engine_check`), then points new requests at it; the old engine finishes what
it started (up to `drain_timeout_s`; past that its requests go back to the queue) and is shut
down. Every generation is pinned to the engine it started on, so no answer mixes two versions.
A checkpoint that fails any step leaves the worker on the old one and is reported (heartbeat
`last_swap_error`, the swap-result channel and log, the worker's log).

A worker with LoRA on (`INFERENCE_LORA=1`) takes a shorter path to a LoRA-trained version whose
adapter applies to the checkpoint its engine runs: it verifies the adapter's files (sha256),
registers the adapter in that engine, checks the engine under the adapter against ringmodel's
copy of the merged checkpoint (the same check), then points new requests at the adapter's view
(lora.py); the previous adapter is removed once its last generation ends. A rollback to the base
is a switch back to the engine itself. `lora.choose_swap_path` decides, and every report says
which path was taken (`path`, `reason`).

Swaps are asked for by a control message (`request`) or by the reconcile loop, which compares the
served version with the registry's champion every `reconcile_interval_s` in case a message was
missed (a refused target is not retried until it is broadcast again). Requests that arrive during
a swap are coalesced: the latest wins.
"""

import asyncio
import gc
import itertools
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from inference_contract import cpu_layout
from inference_contract.protocol import SWAP_LOG_KEY, SWAP_LOG_LENGTH, swap_result_channel
from worker.inference import records
from worker.inference.config import EngineSettings
from worker.inference.db_calls import db_call
from worker.inference.engine import Adapter, Engine, ModelSpec
from worker.inference.engine_check import CheckReport, check_engine
from worker.inference.generation_run import AbortReason
from worker.inference.heartbeat import now_iso
from worker.inference.lora import (
    AdapterEngine,
    AdapterRef,
    SwapChoice,
    SwapPath,
    base_engine,
    choose_swap_path,
    read_adapter_ref,
    resolve_checkpoint_path,
    verify_adapter,
)

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
        # On a CPU host, the worker and its engines' schedulers run beside the engines' bound
        # cores (inference_contract/cpu_layout.py); None where turned off.
        self.cpus = cpu_layout.EngineCpus() if self.config.keep_off_engine_cpus else None
        # vLLM's lora_int_id of each adapter load (unique for the engine's life).
        self._adapter_ids = itertools.count(1)

    async def start_checked_engine(self, spec: ModelSpec) -> Engine:
        """Load with ringmodel (refuses corrupt files early), start the engine, check it."""
        self._set_phase(spec, "verifying checkpoint")
        reference = await asyncio.to_thread(self.reference_loader, spec.path)
        self._set_phase(spec, "starting engine")
        if self.cpus is not None:
            # The new engine's processes inherit this thread's mask: let its OpenMP binding
            # choose among the whole host, not the cores the last engine left to the rest.
            self.cpus.allow_all()
        try:
            engine = await self.engine_factory(spec, self.config.engine)
        finally:
            if self.cpus is not None:
                # Also when the start failed: this thread goes back beside the serving engine.
                await asyncio.to_thread(self.cpus.arrange)
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

    async def start_serving(self, spec: ModelSpec) -> Engine:
        """The worker's first engine, for `spec`: with LoRA on and `spec` a LoRA version, the
        adapter's base with the adapter hot-loaded, so that later versions trained on the same
        base hot-load too; otherwise (or when that fails) `spec`'s own checkpoint."""
        settings = self.config.engine
        ref = await asyncio.to_thread(read_adapter_ref, spec.path) if settings.enable_lora else None
        if ref is None or ref.problem or ref.rank > settings.max_lora_rank:
            return await self.start_checked_engine(spec)
        base = await db_call(records.model_version_for_path)(ref.base) or ModelSpec(
            model_version_id=None, label=os.path.basename(ref.base.rstrip("/")), path=ref.base
        )
        try:
            self.engine = await self.start_checked_engine(base)
            return await self.start_checked_adapter(spec, ref)
        except Exception as exc:  # noqa: BLE001 - the merged checkpoint serves the same version
            logger.error(
                "%s: serving its adapter on %s failed (%s: %s); starting its merged checkpoint",
                spec.label,
                base.label,
                type(exc).__name__,
                exc,
            )
            self.last_swap_error = f"{spec.label}: adapter refused at start: {exc}"[:500]
            engine, self.engine = self.engine, None
            if engine is not None:
                await engine.shutdown()
            return await self.start_checked_engine(spec)

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

    async def choose_path(self, spec: ModelSpec) -> tuple[SwapChoice, AdapterRef | None]:
        """How to move to `spec` from the engine running now (lora.choose_swap_path)."""
        base = base_engine(self.engine)
        adapter, base_path = await asyncio.to_thread(
            lambda: (read_adapter_ref(spec.path), resolve_checkpoint_path(base.spec.path))
        )
        engine_settings = self.config.engine
        choice = choose_swap_path(
            target=spec,
            base=base.spec,
            base_path=base_path,
            adapter=adapter,
            lora_enabled=engine_settings.enable_lora,
            max_rank=engine_settings.max_lora_rank,
        )
        return choice, adapter

    async def _swap_to(self, spec: ModelSpec) -> None:
        current = self.engine.spec
        if current == spec:
            await self._report(spec, ok=True, seconds=0.0, note="already serving it")
            return
        began = time.monotonic()
        self.status = {"to": spec.label, "started_at": now_iso(), "phase": "queued"}
        self._spec = spec
        choice = SwapChoice(SwapPath.BLUE_GREEN, "")
        await self.worker.heartbeat.beat()
        try:
            choice, adapter = await self.choose_path(spec)
            logger.info(
                "swap %s -> %s (%s) begins: %s, %s",
                current.label,
                spec.label,
                spec.path,
                choice.path,
                choice.reason,
            )
            self.status["path"] = str(choice.path)
            if choice.path == SwapPath.BASE:
                new_engine = base_engine(self.engine)
            elif choice.path == SwapPath.HOT_LOAD:
                assert adapter is not None
                new_engine = await self.start_checked_adapter(spec, adapter)
            else:
                new_engine = await self.start_checked_engine(spec)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure leaves the old engine serving
            reason = f"{type(exc).__name__}: {exc}"[:500]
            logger.error("swap to %s (%s) refused: %s", spec.label, spec.path, reason)
            self._refused.add((spec.model_version_id, spec.path))
            self.last_swap_error = f"{spec.label}: {reason}"
            self.status = self._spec = None
            await self._report(
                spec, ok=False, seconds=time.monotonic() - began, error=reason, choice=choice
            )
            return
        old, self.engine = self.engine, new_engine
        self.status = self._spec = None
        if self.config.freeze_gc and choice.path == SwapPath.BLUE_GREEN:
            gc.freeze()  # the new engine's objects too (no collection: it would stall the loop)
        self.last_swap_error = ""
        seconds = time.monotonic() - began
        logger.info(
            "now serving %s (%s; swap took %.1f s); %s finishes %d request(s)",
            spec.label,
            choice.path,
            seconds,
            old.spec.label,
            old.in_flight,
        )
        await self._report(spec, ok=True, seconds=seconds, choice=choice)
        if base_engine(old) is not base_engine(new_engine):
            retired = base_engine(old)
            self.retiring.add(retired)
            self.worker.spawn(self._retire(retired)).set_name(f"retire-{retired.spec.label}")
        elif isinstance(old, AdapterEngine):
            # Same engine, another adapter (or none): the old adapter's generations finish on it.
            self.worker.spawn(self._release_adapter(old)).set_name(f"release-{old.adapter.name}")

    async def start_checked_adapter(self, spec: ModelSpec, ref: AdapterRef) -> AdapterEngine:
        """Verify the adapter's files, load it into the running engine, check the engine under
        it against ringmodel's copy of the merged checkpoint (`spec.path`)."""
        base = base_engine(self.engine)
        self._set_phase(spec, "verifying adapter")
        await asyncio.to_thread(verify_adapter, ref)
        self._set_phase(spec, "verifying checkpoint")
        reference = await asyncio.to_thread(self.reference_loader, spec.path)
        self._set_phase(spec, "loading adapter")
        adapter = Adapter(spec=spec, path=ref.path, int_id=next(self._adapter_ids))
        await base.add_adapter(adapter)
        view = AdapterEngine(base, adapter)
        try:
            self._set_phase(spec, "checking engine")
            if self.engine_checker is not None:
                report = await self.engine_checker(view, spec)
            else:
                report = await check_engine(view, reference, tolerance=self.config.check_tolerance)
            if not report.ok:
                raise EngineRefused(f"engine check under the adapter failed: {report.summary()}")
        except BaseException:
            await base.remove_adapter(adapter)
            raise
        finally:
            del reference
        return view

    async def _release_adapter(self, view: AdapterEngine) -> None:
        """Let the old adapter's generations finish (re-queue them past the drain timeout), then
        remove it from the engine, unless a later swap went back to it."""
        if not await view.wait_idle(self.config.drain_timeout_s):
            for running in list(self.worker.running.values()):
                if running.engine is view:
                    await running.abort(AbortReason.REQUEUE)
            await view.wait_idle(30)
        if self.engine is not view:
            try:
                await view.remove_adapter(view.adapter)
            except Exception:  # noqa: BLE001 - an engine shut down meanwhile has none to remove
                logger.warning("removing adapter %s failed", view.adapter.name, exc_info=True)

    async def _retire(self, engine: Engine) -> None:
        """Let the old engine finish its answers (with or without an adapter), then shut it
        down."""
        try:
            if not await engine.wait_idle(self.config.drain_timeout_s):
                for running in list(self.worker.running.values()):
                    if base_engine(running.engine) is engine:
                        await running.abort(AbortReason.REQUEUE)
                await engine.wait_idle(30)
            await engine.shutdown()
        finally:
            self.retiring.discard(engine)

    async def _report(
        self,
        spec: ModelSpec,
        *,
        ok: bool,
        seconds: float,
        error: str = "",
        note: str = "",
        choice: SwapChoice | None = None,
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
            # Which way the worker went (blue-green, lora-hot-load, base) and why.
            "swap_path": str(choice.path) if choice is not None else "",
            "reason": choice.reason if choice is not None else "",
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
