"""The worker's heartbeat: every `heartbeat_interval_s` its state, as JSON, under
`heartbeat_key(worker_id)` with a TTL and its id in the workers' registry
(inference_contract.worker_registry; the site's health page and queue view read it), and a touch
on the queue entries it is working on, so that no other worker mistakes a long answer for an
abandoned one and re-claims it.

Also measured here, for the heartbeat: tokens per second over the last 10 s, answers completed
and failed, and the event loop's lateness (`loop_lag_ms`, the worst since the last beat: a blocked
loop delays every stream at once, so it is worth watching).
"""

import asyncio
import logging
import os
import socket
import time
from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from inference_contract.worker_registry import heartbeat_write
from worker.inference.lora import AdapterEngine, base_engine

if TYPE_CHECKING:
    from worker.inference.engine import Engine
    from worker.inference.worker import InferenceWorker

logger = logging.getLogger(__name__)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class WorkerStats:
    """Counters the generations update and the heartbeat reports."""

    def __init__(self) -> None:
        self.completed = 0
        self.failed = 0
        self._token_log: deque[tuple[float, int]] = deque()

    def count_tokens(self, n: int) -> None:
        self._token_log.append((time.monotonic(), n))

    def tokens_per_s(self, window_s: float = 10.0) -> float:
        now = time.monotonic()
        while self._token_log and self._token_log[0][0] < now - window_s:
            self._token_log.popleft()
        return sum(n for _, n in self._token_log) / window_s


def serving_summary(engine: "Engine | None", *, lora: bool) -> dict:
    """What the engine serves: its base checkpoint and the adapter on it (None: the checkpoint
    alone), and whether the worker serves adapters by hot-load (`lora`)."""
    if engine is None:
        return {"base": "", "adapter": None, "lora": lora}
    adapter = engine.adapter if isinstance(engine, AdapterEngine) else None
    return {
        "base": base_engine(engine).spec.label,
        "adapter": (
            {"label": adapter.spec.label, "path": adapter.path, "id": adapter.int_id}
            if adapter is not None
            else None
        ),
        "lora": lora,
    }


class Heartbeat:
    def __init__(self, worker: "InferenceWorker") -> None:
        self.worker = worker
        self.started_at = now_iso()
        # The longest the event loop was late since the last beat.
        self.loop_lag_ms = 0.0

    def payload(self) -> dict:
        worker = self.worker
        swap = worker.swap
        spec = swap.engine.spec if swap.engine is not None else None
        return {
            "worker_id": worker.worker_id,
            "state": worker.state,
            "model_version": spec.label if spec else "",
            "model_version_id": spec.model_version_id if spec else None,
            "model_path": spec.path if spec else "",
            # The engine's own checkpoint and the adapter on it, when the version is served as
            # base + adapter (a LoRA hot-load); whether this worker hot-loads adapters at all.
            "serving": serving_summary(swap.engine, lora=worker.config.engine.enable_lora),
            "in_flight": len(worker.running),
            "max_in_flight": worker.config.engine.max_num_seqs,
            "tokens_per_s": round(worker.stats.tokens_per_s(), 1),
            "completed": worker.stats.completed,
            "failed": worker.stats.failed,
            "retiring_engines": len(swap.retiring),
            # CPU hosts: the cores the engine computes on and the ones the rest runs on.
            "cpus": swap.cpus.summary() if swap.cpus is not None else None,
            "loop_lag_ms": round(self.loop_lag_ms, 1),
            "swap": swap.status,
            "last_swap": swap.last_swap,
            "last_swap_error": swap.last_swap_error,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": self.started_at,
            "updated_at": now_iso(),
        }

    async def beat(self) -> None:
        await heartbeat_write(
            self.worker.redis,
            self.worker.worker_id,
            self.payload(),
            self.worker.config.heartbeat_ttl_s,
        )

    async def loop(self) -> None:
        lag_probe = asyncio.create_task(self._measure_loop_lag())
        try:
            await self._beat_forever()
        finally:
            lag_probe.cancel()

    async def _measure_loop_lag(self, period_s: float = 0.05) -> None:
        while True:
            due = time.monotonic() + period_s
            await asyncio.sleep(period_s)
            self.loop_lag_ms = max(self.loop_lag_ms, (time.monotonic() - due) * 1000)

    async def _beat_forever(self) -> None:
        worker = self.worker
        while True:
            try:
                await self.beat()
                self.loop_lag_ms = 0.0
                await worker.queue.touch([r.entry.entry_id for r in worker.running.values()])
            except Exception:  # noqa: BLE001 - Redis may blink; the next beat retries
                logger.warning("heartbeat failed", exc_info=True)
            await asyncio.sleep(worker.config.heartbeat_interval_s)
