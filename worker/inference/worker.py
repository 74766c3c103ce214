"""The inference worker: claims generation requests, streams them from vLLM, swaps checkpoints.

One asyncio program around one serving engine (two during a swap):

- claim loop: takes entries from the Redis Stream consumer group (new ones, and ones left pending by
  a dead worker), up to the engine's batch size; each becomes a task that streams one generation
  through the shared engine (continuous batching);
- flush loop: every `flush_interval_ms` turns the text that arrived into numbered `reasoning` /
  `answer` deltas and appends them to each generation's event log (event_log.py), which pages
  follow (the first visible text, and a large backlog, are flushed at once);
- control loop: Redis pub/sub for swap messages and cancel requests (cancel aborts the request
  inside the engine);
- heartbeat loop: the worker's state under `HEARTBEAT_PREFIX + worker_id`, and a touch on the stream
  entries it is working on so nobody mistakes a long answer for an abandoned one;
- reconcile loop: catches up with the registry's champion if a swap message was missed.

A swap is blue/green: the new checkpoint is verified and loaded with ringmodel, a second engine is
started and checked against ringmodel (`engine_check`), new requests go to it, the old engine
finishes what it started and is shut down. Every generation is pinned to the engine it started on,
so no answer mixes two versions. A checkpoint that fails to load or fails the check leaves the
worker on the old one and is reported (heartbeat `last_swap_error`, swap-result channel, log).
"""

import asyncio
import contextlib
import gc
import json
import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.db import close_old_connections, connections

from inference_contract.event_log import EventLogWriter
from inference_contract.protocol import (
    SWAP_LOG_KEY,
    SWAP_LOG_LENGTH,
    cancel_channel,
    cancel_key,
    control_channel,
    heartbeat_key,
    swap_result_channel,
)
from inference_contract.redis_retry import async_retry_options
from inference_contract.request_queue import QueueEntry, RequestQueue, enqueue_generation_async
from ringmodel.chat import THINK_CLOSE
from training.confidence import ConfidenceTracker
from webapp.tutoring import events
from webapp.tutoring.models import GenerationStatus
from worker.inference import records
from worker.inference.config import EngineSettings, WorkerConfig
from worker.inference.engine import ModelSpec, VllmEngine
from worker.inference.engine_check import CheckReport, check_engine, load_reference
from worker.inference.hints import HintStream
from worker.inference.streaming import Delta, GenerationStream

logger = logging.getLogger(__name__)

EngineFactory = Callable[[ModelSpec, EngineSettings], Awaitable[Any]]
EngineChecker = Callable[[Any, ModelSpec], Awaitable[CheckReport]]

FAILED_MESSAGE = "The model could not finish this solution. Please try again."
WORKER_LOST_MESSAGE = (
    "This request stopped the tutor's model several times, so it was given up. "
    "Please try rephrasing the problem."
)
# Tokens the answer needs at the very least; a prompt leaving fewer is refused as too long.
MIN_NEW_TOKENS = 16


def _db(function: Callable) -> Callable[..., Awaitable]:
    # ORM calls run in the loop's thread pool, so a burst of claims runs in parallel instead of
    # queueing behind one thread. Each call ends as a request does: with the pool (settings:
    # DB_POOL_*, CONN_MAX_AGE 0) its connection goes back to the pool, so an idle thread holds
    # none and the worker uses a bounded set however many threads it has run on; without the pool
    # the thread keeps its connection for CONN_MAX_AGE.
    def call_and_release(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(call_and_release, thread_sensitive=False)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Running:
    """A generation this worker is streaming right now."""

    entry: QueueEntry
    engine: Any
    request_id: str
    stream: GenerationStream
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Why the engine request was aborted: "cancel" (the student), "requeue" (shutdown, drain).
    abort_reason: str | None = None
    # Deltas taken from the stream whose replay write failed (Redis down for longer than the
    # client's retries): written, in order, before anything newer on the next flush.
    unsent: list[Delta] = field(default_factory=list)

    def take_deltas(self) -> list[Delta]:
        deltas = self.unsent + self.stream.take_deltas()
        self.unsent = []
        return deltas

    @property
    def dirty(self) -> bool:
        return bool(self.unsent or self.stream.pending_chars)

    @property
    def generation_id(self) -> int:
        return self.entry.generation_id


class EngineRequest:
    """One engine request, started at construction (its first output is already being awaited),
    iterated later; `cancel` aborts it inside the engine if it is still running."""

    def __init__(self, engine: Any, request_id: str, prompt_ids: list[int], params: dict) -> None:
        self._outputs = engine.stream(request_id, prompt_ids, **params)
        self._first = asyncio.ensure_future(anext(self._outputs))

    async def __aiter__(self):
        try:
            first = await self._first
        except StopAsyncIteration:
            return
        yield first
        async for chunk in self._outputs:
            yield chunk

    async def cancel(self) -> None:
        """Stop the request: vLLM aborts a request whose generator is closed."""
        self._first.cancel()
        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, Exception):
            await self._first
        with contextlib.suppress(Exception):
            await self._outputs.aclose()


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
        self.engine_factory = engine_factory
        self.reference_loader = reference_loader
        self.engine_checker = engine_checker
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
        self.started_at = _now_iso()
        self.engine: Any = None
        self.retiring: set[Any] = set()
        self.running: dict[int, Running] = {}
        self.tasks: set[asyncio.Task] = set()
        self._slot_free = asyncio.Event()
        self._token_log: deque[tuple[float, int]] = deque()
        self.completed = 0
        self.failed = 0
        # Swaps: the one in progress (for the heartbeat), the next one asked for, the last result,
        # and the targets that were refused (the reconcile loop does not retry those by itself).
        self.swap_status: dict | None = None
        self._swap_spec: ModelSpec | None = None
        self._swap_next: ModelSpec | None = None
        self._swap_task: asyncio.Task | None = None
        self.last_swap: dict | None = None
        self.last_swap_error = ""
        self._refused: set[tuple[int | None, str]] = set()
        self._stopping = False
        # The longest the event loop was late since the last heartbeat: a blocked loop delays
        # every stream at once, so it is worth watching.
        self.loop_lag_ms = 0.0

    # --- lifecycle --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set, then hand unfinished work back and exit."""
        await self.queue.ensure_group()
        heartbeat = asyncio.create_task(self._heartbeat_loop(), name="heartbeat")
        try:
            spec = await self._initial_spec()
            logger.info("worker %s starting on %s (%s)", self.worker_id, spec.label, spec.path)
            self.engine = await self._start_checked_engine(spec)
            # torch, vLLM and Django leave millions of long-lived objects; a full collection that
            # scans them stalls the event loop (and every stream) for up to a second. Collect
            # once now and move them out of the collector's way, as vLLM's own server does.
            if self.config.freeze_gc:
                gc.collect()
                gc.freeze()
            self.state = "serving"
            await self._beat()
            logger.info("worker %s serving %s", self.worker_id, spec.label)
            loops = [
                self._claim_loop(),
                self._flush_loop(),
                self._control_loop(),
                self._reconcile_loop(),
            ]
            for loop in loops:
                self._spawn(loop)
            await stop.wait()
        finally:
            await self._shutdown()
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            with contextlib.suppress(Exception):
                await self.redis.delete(heartbeat_key(self.worker_id))
            await self.redis.aclose()
            await _db(connections.close_all)()

    def _spawn(self, coroutine) -> asyncio.Task:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("worker task %s died", task.get_name(), exc_info=task.exception())

    async def _shutdown(self, grace_s: float = 20.0) -> None:
        self._stopping = True
        self.state = "stopping"
        with contextlib.suppress(Exception):
            await self._beat()
        generation_tasks = [t for t in self.tasks if t.get_name().startswith("generation-")]
        for task in list(self.tasks):
            if task not in generation_tasks:
                task.cancel()
        if self._swap_task is not None:
            self._swap_task.cancel()
        if generation_tasks:
            # Let short answers finish; hand the rest back to the queue for another worker.
            _, pending = await asyncio.wait(generation_tasks, timeout=grace_s)
            for running in list(self.running.values()):
                await self._abort(running, "requeue")
            if pending:
                await asyncio.wait(pending, timeout=10)
        for engine in [self.engine, *self.retiring]:
            if engine is not None:
                with contextlib.suppress(Exception):
                    await engine.shutdown()

    async def _initial_spec(self) -> ModelSpec:
        champion = await _db(records.champion_spec)()
        if champion is not None:
            return champion
        path = self.config.fallback_model
        registered = await _db(records.model_version_for_path)(path)
        return registered or ModelSpec(
            model_version_id=None, label=os.path.basename(path.rstrip("/")) or path, path=path
        )

    async def _start_checked_engine(self, spec: ModelSpec) -> Any:
        """Load with ringmodel (refuses corrupt files early), start the engine, check it."""
        self._set_swap_phase(spec, "verifying checkpoint")
        reference = await asyncio.to_thread(self.reference_loader, spec.path)
        self._set_swap_phase(spec, "starting engine")
        engine = await self.engine_factory(spec, self.config.engine)
        try:
            self._set_swap_phase(spec, "checking engine")
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

    def _set_swap_phase(self, spec: ModelSpec, phase: str) -> None:
        logger.info("%s: %s", spec.label, phase)
        if self.swap_status is not None:
            self.swap_status["phase"] = phase

    # --- heartbeat --------------------------------------------------------------------------

    def heartbeat(self) -> dict:
        spec = self.engine.spec if self.engine is not None else None
        return {
            "worker_id": self.worker_id,
            "state": self.state,
            "model_version": spec.label if spec else "",
            "model_version_id": spec.model_version_id if spec else None,
            "model_path": spec.path if spec else "",
            "in_flight": len(self.running),
            "max_in_flight": self.config.engine.max_num_seqs,
            "tokens_per_s": round(self.tokens_per_s(), 1),
            "completed": self.completed,
            "failed": self.failed,
            "retiring_engines": len(self.retiring),
            "loop_lag_ms": round(self.loop_lag_ms, 1),
            "swap": self.swap_status,
            "last_swap": self.last_swap,
            "last_swap_error": self.last_swap_error,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": self.started_at,
            "updated_at": _now_iso(),
        }

    def tokens_per_s(self, window_s: float = 10.0) -> float:
        now = time.monotonic()
        while self._token_log and self._token_log[0][0] < now - window_s:
            self._token_log.popleft()
        return sum(n for _, n in self._token_log) / window_s

    async def _beat(self) -> None:
        await self.redis.set(
            heartbeat_key(self.worker_id),
            json.dumps(self.heartbeat()),
            ex=self.config.heartbeat_ttl_s,
        )

    async def _heartbeat_loop(self) -> None:
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
        while True:
            try:
                await self._beat()
                self.loop_lag_ms = 0.0
                await self.queue.touch([r.entry.entry_id for r in self.running.values()])
            except Exception:  # noqa: BLE001 - Redis may blink; the next beat retries
                logger.warning("heartbeat failed", exc_info=True)
            await asyncio.sleep(self.config.heartbeat_interval_s)

    # --- claiming ---------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        while not self._stopping:
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
                if capacity > 0 and not self._stopping:
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
        self._spawn(self._run_generation(entry)).set_name(f"generation-{entry.generation_id}")

    async def _give_up(self, entry: QueueEntry) -> None:
        logger.error(
            "generation %s was delivered %s times; giving up",
            entry.generation_id,
            entry.deliveries,
        )
        if await _db(records.generation_fail_unclaimed)(
            generation_id=entry.generation_id, error="worker lost repeatedly"
        ):
            await self._send(
                entry.generation_id,
                events.error(code="worker_lost", message=WORKER_LOST_MESSAGE),
                events.done(status=GenerationStatus.FAILED),
            )
        await self.queue.ack(entry.entry_id)

    # --- one generation ---------------------------------------------------------------------

    async def _run_generation(self, entry: QueueEntry) -> None:
        engine = self.engine  # pinned: this answer comes from this engine, whatever swaps later
        generation_id = entry.generation_id
        request_id = f"gen-{generation_id}-{uuid.uuid4().hex[:8]}"
        started = time.monotonic()
        # A self-contained entry (kind + text) starts the engine at once: the prompt's prefill runs
        # while the row is claimed. The claim still decides; a refused one aborts the request.
        request = None
        prompt_tokens: int | None = None
        if entry.kind and entry.prompt_text:
            prompt_ids = self._prompt_ids(engine, entry.prompt_text)
            prompt_tokens = len(prompt_ids)
            if self._room(prompt_ids) >= MIN_NEW_TOKENS:
                request = EngineRequest(engine, request_id, prompt_ids, self._params(prompt_ids))
        try:
            # One transaction: the claim, and the problem's reference and the stop flag.
            claimed = await _db(records.generation_claim)(
                generation_id=generation_id, worker_id=self.worker_id, model=engine.spec
            )
        except BaseException:
            if request is not None:
                await request.cancel()
            raise
        if claimed is None:
            if request is not None:
                await request.cancel()
            await self.queue.ack(entry.entry_id)
            return
        claimed_at = time.monotonic()
        job_task = asyncio.get_running_loop().create_future()
        job_task.set_result(claimed)
        running = Running(
            entry=entry,
            engine=engine,
            request_id=request_id,
            stream=self._new_stream(generation_id, entry.kind, entry.hint_index),
        )
        self.running[generation_id] = running
        first_token_at: float | None = None
        thinking_ended_at: float | None = None
        completion_tokens = 0
        finish_reason: str | None = None
        confidence = ConfidenceTracker()
        job_checked = False
        try:
            last_seq, cancel_flagged = await asyncio.gather(
                self.log.last_seq(generation_id),
                self.redis.exists(cancel_key(generation_id)),
            )
            running.stream = self._new_stream(
                generation_id, entry.kind, entry.hint_index, start_seq=last_seq
            )
            opening = [events.status_running(model_version=engine.spec.label)]
            if last_seq:
                # A re-run after a crash: pages drop what the dead worker had streamed.
                opening.insert(
                    0,
                    events.snapshot(
                        seq=last_seq,
                        reasoning="",
                        answer="",
                        status=GenerationStatus.RUNNING,
                        model_version=engine.spec.label,
                    ),
                )
            # Before any delta, in the same log: a page sees the restart before the new text.
            await self._send(generation_id, *opening, expire=True)
            if request is None and not cancel_flagged:
                # An entry without its text, or a prompt too long to start: read the row first.
                job = await job_task
                job_checked = True
                cancel_flagged = job.cancel_requested
                prompt_ids = self._prompt_ids(engine, entry.prompt_text or job.problem_text)
                if entry.kind is None:
                    # A queue entry that named no kind: the row says what this is.
                    running.stream = self._new_stream(
                        generation_id, job.kind, job.hint_index, start_seq=last_seq
                    )
                prompt_tokens = len(prompt_ids)
                if not cancel_flagged and self._room(prompt_ids) < MIN_NEW_TOKENS:
                    limit = self.config.engine.max_model_len - MIN_NEW_TOKENS
                    await self._finish_failed(
                        running,
                        code="prompt_too_long",
                        message=(
                            f"This problem is too long for the model ({prompt_tokens} "
                            f"tokens; at most {limit}). Please shorten it."
                        ),
                        started=started,
                        prompt_tokens=prompt_tokens,
                    )
                    return
                if not cancel_flagged:
                    request = EngineRequest(
                        engine, request_id, prompt_ids, self._params(prompt_ids)
                    )
            if cancel_flagged:
                running.abort_reason = "cancel"
                if request is not None:
                    await request.cancel()
            else:
                async for chunk in request:
                    confidence.add(chunk.logprobs)
                    if chunk.new_tokens:
                        if first_token_at is None:
                            first_token_at = time.monotonic()
                        completion_tokens += chunk.new_tokens
                        self._token_log.append((time.monotonic(), chunk.new_tokens))
                    if chunk.text:
                        running.stream.feed(chunk.text)
                        if (
                            thinking_ended_at is None
                            and THINK_CLOSE
                            in running.stream.text[-(len(chunk.text) + len(THINK_CLOSE)) :]
                        ):
                            thinking_ended_at = time.monotonic()
                        if (
                            not running.stream.has_sent
                            or running.stream.pending_chars >= self.config.flush_max_chars
                        ):
                            await self._flush(running)
                    if chunk.finished:
                        finish_reason = chunk.finish_reason
                    elif not job_checked and job_task.done():
                        job_checked = True
                        if job_task.result().cancel_requested:
                            await self._abort(running, "cancel")
            job = await job_task
            if running.abort_reason == "requeue":
                await self._requeue(running)
                return
            status = (
                GenerationStatus.CANCELLED
                if running.abort_reason == "cancel" or finish_reason == "abort"
                else GenerationStatus.DONE
            )
            if status == GenerationStatus.DONE:
                running.stream.conclude()
            await self._flush(running)
            await self._finish(
                running,
                job,
                status=status,
                started=started,
                first_token_at=first_token_at,
                thinking_ended_at=thinking_ended_at,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                confidence=confidence.score(),
                cut_off=finish_reason == "length",
            )
            if first_token_at is not None:
                logger.info(
                    "generation %s %s on %s: %d tokens; claim %.0f ms, first token %.0f ms, "
                    "total %.0f ms",
                    generation_id,
                    status,
                    engine.spec.label,
                    completion_tokens,
                    (claimed_at - started) * 1000,
                    (first_token_at - started) * 1000,
                    (time.monotonic() - started) * 1000,
                )
        except asyncio.CancelledError:
            if request is not None:
                await request.cancel()
            job_task.cancel()
            raise
        except Exception:
            logger.exception(
                "generation %s failed on %s (%s)",
                generation_id,
                self.worker_id,
                engine.spec.label,
            )
            if request is not None:
                with contextlib.suppress(Exception):
                    await request.cancel()
            with contextlib.suppress(Exception):
                await self._finish_failed(
                    running,
                    code="generation_failed",
                    message=FAILED_MESSAGE,
                    started=started,
                    prompt_tokens=prompt_tokens,
                )
        finally:
            self.running.pop(generation_id, None)
            self._slot_free.set()

    @staticmethod
    def _prompt_ids(engine: Any, text: str) -> list[int]:
        # A hint is asked for as a full solution too: the server cuts the hint from it (hints.py).
        return engine.prompt_ids(text.strip(), reasoning_suffix=True)

    @staticmethod
    def _new_stream(
        generation_id: int, kind: str | None, hint_index: int | None, *, start_seq: int = 0
    ) -> GenerationStream:
        if kind == "hint":
            return HintStream(generation_id, hint_index=hint_index or 0, start_seq=start_seq)
        return GenerationStream(generation_id, start_seq=start_seq)

    def _room(self, prompt_ids: list[int]) -> int:
        return self.config.engine.max_model_len - len(prompt_ids)

    def _params(self, prompt_ids: list[int]) -> dict:
        return {
            "max_tokens": min(self.config.sampling.max_new_tokens, self._room(prompt_ids)),
            "temperature": self.config.sampling.temperature,
            "top_p": self.config.sampling.top_p,
        }

    async def _finish(
        self,
        running: Running,
        job: records.GenerationJob,
        *,
        status: str,
        started: float,
        first_token_at: float | None,
        thinking_ended_at: float | None,
        prompt_tokens: int | None,
        completion_tokens: int,
        confidence: float | None = None,
        cut_off: bool = False,
    ) -> None:
        reasoning, answer, _finished_thinking = running.stream.final_split()
        final_answer = running.stream.final_answer()
        if isinstance(running.stream, HintStream) and answer:
            # A hint is cut from a hidden worked solution that every hint of the attempt shares:
            # its count is the hint's own tokens, not the solution's behind it.
            completion_tokens = running.engine.text_tokens(answer)
        verdict = (
            await asyncio.to_thread(records.verdict_for, job, final_answer or None)
            if status == GenerationStatus.DONE
            else ""
        )
        outcome = records.GenerationOutcome(
            status=status,
            reasoning=reasoning,
            answer=answer,
            final_answer=final_answer,
            verdict=verdict,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            time_to_first_token_ms=(
                (first_token_at - started) * 1000 if first_token_at is not None else None
            ),
            thinking_ms=(
                (thinking_ended_at - first_token_at) * 1000
                if thinking_ended_at is not None
                and first_token_at is not None
                and running.stream.shows_reasoning
                else None
            ),
            duration_ms=(time.monotonic() - started) * 1000,
            confidence=confidence,
            cut_off=cut_off,
        )
        await self._store_and_announce(running, outcome)

    async def _finish_failed(
        self,
        running: Running,
        *,
        code: str,
        message: str,
        started: float,
        prompt_tokens: int | None,
    ) -> None:
        reasoning, answer, _ = running.stream.final_split()
        outcome = records.GenerationOutcome(
            status=GenerationStatus.FAILED,
            reasoning=reasoning,
            answer=answer,
            final_answer="",
            verdict="",
            prompt_tokens=prompt_tokens,
            completion_tokens=0,
            time_to_first_token_ms=None,
            duration_ms=(time.monotonic() - started) * 1000,
            error=message,
        )
        await self._store_and_announce(
            running, outcome, error=events.error(code=code, message=message)
        )

    async def _store_and_announce(
        self, running: Running, outcome: records.GenerationOutcome, error: dict | None = None
    ) -> None:
        """Store the row, then tell the browsers, then ack: in that order, so a client that
        connects in between reads a finished row, and a crash before the ack re-runs nothing
        (a re-claimed finished row is only acknowledged)."""
        generation_id = running.generation_id
        stored = await _db(records.generation_finish)(
            generation_id=generation_id, worker_id=self.worker_id, outcome=outcome
        )
        if not stored:
            return  # another worker owns it now; its entry is no longer ours to ack
        if outcome.status == GenerationStatus.FAILED:
            self.failed += 1
        else:
            self.completed += 1
        await self._send(
            generation_id,
            *([error] if error is not None else []),
            events.done(
                status=outcome.status,
                final_answer=outcome.final_answer,
                verdict=outcome.verdict,
                model_version=running.engine.spec.label,
                completion_tokens=outcome.completion_tokens,
                time_to_first_token_ms=outcome.time_to_first_token_ms,
                duration_ms=outcome.duration_ms,
                seq=running.stream.seq,
            ),
            expire=True,
        )
        await self.queue.ack(running.entry.entry_id)
        await self.redis.delete(cancel_key(generation_id))

    async def _requeue(self, running: Running) -> None:
        """Hand an unfinished generation back to the queue (shutdown, or a drain that timed out):
        a new entry, then the old one acknowledged, so it is never in neither."""
        generation_id = running.generation_id
        if await _db(records.generation_requeue)(
            generation_id=generation_id, worker_id=self.worker_id
        ):
            await enqueue_generation_async(
                self.redis,
                stream=self.config.stream,
                generation_id=generation_id,
                prompt_text=running.entry.prompt_text,
                hint_index=running.entry.hint_index,
            )
            await self._send(generation_id, events.status_queued(position=None))
            await self.queue.ack(running.entry.entry_id)
            logger.info("generation %s handed back to the queue", generation_id)

    async def _abort(self, running: Running, reason: str) -> None:
        if running.abort_reason is None:
            running.abort_reason = reason
        with contextlib.suppress(Exception):
            await running.engine.abort(running.request_id)

    # --- streaming --------------------------------------------------------------------------

    def flush_period_s(self) -> float:
        """The flush period: flush_interval_ms, stretched so that all streams together stay
        within max_messages_per_s."""
        shortest = self.config.flush_interval_ms / 1000
        return max(shortest, len(self.running) / max(1, self.config.max_messages_per_s))

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_period_s())
            dirty = [r for r in self.running.values() if r.dirty]
            if dirty:
                try:
                    await self._flush_many(dirty)
                except Exception:  # noqa: BLE001 - the text stays pending; the next tick retries
                    logger.warning("flushing deltas failed", exc_info=True)

    async def _flush_many(self, dirty: list[Running]) -> None:
        """One tick: every stream's new deltas, one log entry per stream, all in one round trip.
        A stream being flushed inline right now is left for the next tick."""
        held: list[tuple[Running, list[Delta]]] = []
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
                    [(r.generation_id, self._delta_events(deltas)) for r, deltas in held]
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

    async def _flush(self, running: Running) -> None:
        """Flush one stream now (its first text, a large backlog, its end). A failure is logged
        and the deltas kept for the next tick: the answer goes on, and the stored row (which
        `done` tells pages to fall back on) has the whole text anyway."""
        async with running.lock:
            deltas = running.take_deltas()
            if not deltas:
                return
            try:
                await self.log.append(running.generation_id, self._delta_events(deltas))
            except Exception:  # noqa: BLE001 - Redis down past the client's retries
                running.unsent = deltas
                logger.warning(
                    "generation %s: writing deltas failed; retrying on the next tick",
                    running.generation_id,
                    exc_info=True,
                )

    @staticmethod
    def _delta_events(deltas: list[Delta]) -> list[dict]:
        return [events.delta(seq=d.seq, channel=d.channel, text=d.text) for d in deltas]

    async def _send(self, generation_id: int, *sent: dict, expire: bool = False) -> None:
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

    # --- control: cancel and swap -----------------------------------------------------------

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
            await self._abort(running, "cancel")

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
        self.request_swap(spec, explicit=True)

    def request_swap(self, spec: ModelSpec, *, explicit: bool) -> None:
        """Queue a swap to `spec`; the latest request wins while one is in progress."""
        if explicit:
            self._refused.discard((spec.model_version_id, spec.path))
        if self._swap_spec == spec:
            return  # already on its way
        self._swap_next = spec
        if self._swap_task is None or self._swap_task.done():
            self._swap_task = asyncio.create_task(self._swap_worker(), name="swap")

    async def _swap_worker(self) -> None:
        while self._swap_next is not None and not self._stopping:
            spec, self._swap_next = self._swap_next, None
            await self._swap_to(spec)

    async def _swap_to(self, spec: ModelSpec) -> None:
        current = self.engine.spec
        if current == spec:
            await self._report_swap(spec, ok=True, seconds=0.0, note="already serving it")
            return
        began = time.monotonic()
        self.swap_status = {"to": spec.label, "started_at": _now_iso(), "phase": "queued"}
        self._swap_spec = spec
        logger.info("swap %s -> %s (%s) begins", current.label, spec.label, spec.path)
        await self._beat()
        try:
            new_engine = await self._start_checked_engine(spec)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure leaves the old engine serving
            reason = f"{type(exc).__name__}: {exc}"[:500]
            logger.error("swap to %s (%s) refused: %s", spec.label, spec.path, reason)
            self._refused.add((spec.model_version_id, spec.path))
            self.last_swap_error = f"{spec.label}: {reason}"
            self.swap_status = self._swap_spec = None
            await self._report_swap(spec, ok=False, seconds=time.monotonic() - began, error=reason)
            return
        old, self.engine = self.engine, new_engine
        self.swap_status = self._swap_spec = None
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
        await self._report_swap(spec, ok=True, seconds=seconds)
        self.retiring.add(old)
        self._spawn(self._retire(old)).set_name(f"retire-{old.spec.label}")

    async def _retire(self, engine: Any) -> None:
        """Let the old engine finish its answers, then shut it down."""
        try:
            if not await engine.wait_idle(self.config.drain_timeout_s):
                for running in list(self.running.values()):
                    if running.engine is engine:
                        await self._abort(running, "requeue")
                await engine.wait_idle(30)
            await engine.shutdown()
        finally:
            self.retiring.discard(engine)

    async def _report_swap(
        self, spec: ModelSpec, *, ok: bool, seconds: float, error: str = "", note: str = ""
    ) -> None:
        result = {
            "worker_id": self.worker_id,
            "model_version_id": spec.model_version_id,
            "label": spec.label,
            "path": spec.path,
            "ok": ok,
            "error": error,
            "note": note,
            "seconds": round(seconds, 2),
            "finished_at": _now_iso(),
        }
        self.last_swap = result
        payload = json.dumps(result)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.publish(swap_result_channel(self.redis), payload)
                pipe.lpush(SWAP_LOG_KEY, payload)
                pipe.ltrim(SWAP_LOG_KEY, 0, SWAP_LOG_LENGTH - 1)
                await pipe.execute()
            await self._beat()
        except Exception:  # noqa: BLE001 - the log line above already has it
            logger.warning("could not publish the swap result", exc_info=True)

    async def _reconcile_loop(self) -> None:
        interval = self.config.reconcile_interval_s
        if interval <= 0:
            return
        while True:
            await asyncio.sleep(interval)
            try:
                champion = await _db(records.champion_spec)()
            except Exception:  # noqa: BLE001 - the database may blink; try next time
                logger.warning("reading the champion failed", exc_info=True)
                continue
            if (
                champion is not None
                and champion != self.engine.spec
                and (champion.model_version_id, champion.path) not in self._refused
                and self._swap_spec is None
                and self._swap_next is None
            ):
                logger.info("the registry's champion is %s: swapping to it", champion.label)
                self.request_swap(champion, explicit=False)


class EngineRefused(Exception):
    """A new engine did not pass its check against ringmodel."""
