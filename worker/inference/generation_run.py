"""One generation, from its queue entry to its stored row: `GenerationRun`.

The worker's claim loop makes one `GenerationRun` per queue entry and runs it as a task; all of
them share the serving engine's continuous batch. A run:

1. pins the engine serving at that moment (a blue/green swap later does not move it) and, when the
   entry carries kind and text, submits the prompt at once, so the prefill runs while the row is
   claimed;
2. claims the row (one transaction, which also reads the problem's reference and the stop flag);
   a refused claim (the row finished, or another worker's) drops the engine request and acks;
3. opens the generation's event log (`running`; after a crash, a `snapshot` with empty texts that
   clears what the dead worker had streamed, numbered on from its last `seq`);
4. feeds the engine's text to its `GenerationStream` (the flush loop in outbox.py turns it into
   deltas; the first visible text and a large backlog are flushed at once);
5. grades the answer (answer key, else the exact calculation) and stores the row (verdict and its
   source, tokens, timings, confidence), appends `done`, acks the queue entry —
   in that order, so a crash before the ack re-runs nothing twice.

A run can be aborted inside the engine (`abort`) for an `AbortReason`: the student cancelled (the
row is stored `cancelled`), or the worker hands it back to the queue (shutdown, or a retiring
engine that did not drain in time).
"""

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from inference_contract.protocol import cancel_key
from inference_contract.request_queue import QueueEntry, enqueue_generation_async
from ringmodel.chat import THINK_CLOSE
from training.confidence import ConfidenceTracker
from webapp.tutoring import events
from webapp.tutoring.models import GenerationStatus
from worker.inference import records
from worker.inference.db_calls import db_call
from worker.inference.engine import Chunk, Engine
from worker.inference.hints import HintStream
from worker.inference.streaming import Delta, GenerationStream

if TYPE_CHECKING:
    from worker.inference.worker import InferenceWorker

logger = logging.getLogger(__name__)

FAILED_MESSAGE = "The model could not finish this solution. Please try again."
# Tokens the answer needs at the very least; a prompt leaving fewer is refused as too long.
MIN_NEW_TOKENS = 16


class AbortReason(StrEnum):
    """Why a generation's engine request was aborted."""

    CANCEL = "cancel"  # the student asked to stop: stored as cancelled
    REQUEUE = "requeue"  # the worker gives it back to the queue (shutdown, a drain that timed out)


class EngineRequest:
    """One engine request, started at construction (its first output is already being awaited),
    iterated later; `cancel` aborts it inside the engine if it is still running."""

    def __init__(
        self, engine: Engine, request_id: str, prompt_ids: list[int], params: dict
    ) -> None:
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


@dataclass
class Timings:
    """When the run's milestones happened (time.monotonic())."""

    started: float
    claimed_at: float | None = None
    first_token_at: float | None = None
    thinking_ended_at: float | None = None

    def ms_since_start(self, moment: float | None) -> float | None:
        return (moment - self.started) * 1000 if moment is not None else None


def new_stream(
    generation_id: int, kind: str | None, hint_index: int | None, *, start_seq: int = 0
) -> GenerationStream:
    if kind == "hint":
        return HintStream(generation_id, hint_index=hint_index or 0, start_seq=start_seq)
    return GenerationStream(generation_id, start_seq=start_seq)


class GenerationRun:
    """A generation this worker streams: what the flush loop, the heartbeat's touch and a cancel
    see while it runs (the worker's `running`, from its claim to its end), and the state of
    `run`."""

    def __init__(self, worker: "InferenceWorker", entry: QueueEntry, engine: Engine) -> None:
        self.worker = worker
        self.config = worker.config
        self.entry = entry
        self.engine = engine  # pinned: this answer comes from this engine, whatever swaps later
        self.request_id = f"gen-{entry.generation_id}-{uuid.uuid4().hex[:8]}"
        self.stream = new_stream(entry.generation_id, entry.kind, entry.hint_index)
        # Held while this stream's deltas are taken and written (the flush loop or `flush`).
        self.lock = asyncio.Lock()
        self.abort_reason: AbortReason | None = None
        # Deltas taken from the stream whose write failed (Redis down for longer than the
        # client's retries): written, in order, before anything newer on the next flush.
        self.unsent: list[Delta] = []
        self.request: EngineRequest | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens = 0
        self.finish_reason: str | None = None
        self.confidence = ConfidenceTracker()
        self.timings = Timings(started=time.monotonic())

    @property
    def generation_id(self) -> int:
        return self.entry.generation_id

    @property
    def dirty(self) -> bool:
        return bool(self.unsent or self.stream.pending_chars)

    def take_deltas(self) -> list[Delta]:
        deltas = self.unsent + self.stream.take_deltas()
        self.unsent = []
        return deltas

    async def abort(self, reason: AbortReason) -> None:
        """Abort the engine request (the first reason given is the one that counts)."""
        if self.abort_reason is None:
            self.abort_reason = reason
        with contextlib.suppress(Exception):
            await self.engine.abort(self.request_id)

    # --- the run ----------------------------------------------------------------------------

    async def run(self) -> None:
        entry = self.entry
        # A self-contained entry (kind + text) starts the engine at once: the prompt's prefill runs
        # while the row is claimed. The claim still decides; a refused one aborts the request.
        if entry.kind and entry.prompt_text:
            prompt_ids = self._prompt_ids(entry.prompt_text)
            self.prompt_tokens = len(prompt_ids)
            if self._room(prompt_ids) >= MIN_NEW_TOKENS:
                self._start_request(prompt_ids)
        try:
            # One transaction: the claim, and the problem's reference and the stop flag.
            job = await db_call(records.generation_claim)(
                generation_id=self.generation_id,
                worker_id=self.worker.worker_id,
                model=self.engine.spec,
            )
        except BaseException:
            if self.request is not None:
                await self.request.cancel()
            raise
        if job is None:
            if self.request is not None:
                await self.request.cancel()
            await self.worker.queue.ack(entry.entry_id)
            return
        self.timings.claimed_at = time.monotonic()
        self.worker.running[self.generation_id] = self
        try:
            await self._stream_and_finish(job)
        except asyncio.CancelledError:
            if self.request is not None:
                await self.request.cancel()
            raise
        except Exception:
            logger.exception(
                "generation %s failed on %s (%s)",
                self.generation_id,
                self.worker.worker_id,
                self.engine.spec.label,
            )
            if self.request is not None:
                with contextlib.suppress(Exception):
                    await self.request.cancel()
            with contextlib.suppress(Exception):
                await self._finish_failed(code="generation_failed", message=FAILED_MESSAGE)
        finally:
            self.worker.running.pop(self.generation_id, None)

    async def _stream_and_finish(self, job: records.GenerationJob) -> None:
        entry, generation_id, outbox = self.entry, self.generation_id, self.worker.outbox
        last_seq, cancel_flagged = await asyncio.gather(
            self.worker.log.last_seq(generation_id),
            self.worker.redis.exists(cancel_key(generation_id)),
        )
        self.stream = new_stream(generation_id, entry.kind, entry.hint_index, start_seq=last_seq)
        opening = [events.status_running(model_version=self.engine.spec.label)]
        if last_seq:
            # A re-run after a crash: pages drop what the dead worker had streamed.
            opening.insert(
                0,
                events.snapshot(
                    seq=last_seq,
                    reasoning="",
                    answer="",
                    status=GenerationStatus.RUNNING,
                    model_version=self.engine.spec.label,
                ),
            )
        # Before any delta, in the same log: a page sees the restart before the new text.
        await outbox.send(generation_id, *opening, expire=True)
        # The row, read with the claim, has a stop flag too. A request that started before the
        # claim checks it at its first output; any other reads it here, before starting.
        row_checked = False
        if self.request is None and not cancel_flagged:
            # An entry without its text, or a prompt too long to start: the row has the rest.
            row_checked = True
            cancel_flagged = job.cancel_requested
            prompt_ids = self._prompt_ids(entry.prompt_text or job.problem_text)
            if entry.kind is None:
                # A queue entry that named no kind: the row says what this is.
                self.stream = new_stream(
                    generation_id, job.kind, job.hint_index, start_seq=last_seq
                )
            self.prompt_tokens = len(prompt_ids)
            if not cancel_flagged and self._room(prompt_ids) < MIN_NEW_TOKENS:
                limit = self.config.engine.max_model_len - MIN_NEW_TOKENS
                await self._finish_failed(
                    code="prompt_too_long",
                    message=(
                        f"This problem is too long for the model ({self.prompt_tokens} "
                        f"tokens; at most {limit}). Please shorten it."
                    ),
                )
                return
            if not cancel_flagged:
                self._start_request(prompt_ids)
        if cancel_flagged:
            self.abort_reason = AbortReason.CANCEL
            if self.request is not None:
                await self.request.cancel()
        else:
            async for chunk in self.request:
                await self._take(chunk)
                if not chunk.finished and not row_checked:
                    row_checked = True
                    if job.cancel_requested:
                        await self.abort(AbortReason.CANCEL)
        if self.abort_reason == AbortReason.REQUEUE:
            await self._requeue()
            return
        status = (
            GenerationStatus.CANCELLED
            if self.abort_reason == AbortReason.CANCEL or self.finish_reason == "abort"
            else GenerationStatus.DONE
        )
        if status == GenerationStatus.DONE:
            self.stream.conclude()
        await outbox.flush(self)
        await self._finish(job, status=status)
        if self.timings.first_token_at is not None:
            logger.info(
                "generation %s %s on %s: %d tokens; claim %.0f ms, first token %.0f ms, "
                "total %.0f ms",
                generation_id,
                status,
                self.engine.spec.label,
                self.completion_tokens,
                self.timings.ms_since_start(self.timings.claimed_at),
                self.timings.ms_since_start(self.timings.first_token_at),
                self.timings.ms_since_start(time.monotonic()),
            )

    async def _take(self, chunk: Chunk) -> None:
        """One engine output: count it, feed its text, flush at once when a page waits for it."""
        self.confidence.add(chunk.logprobs)
        if chunk.new_tokens:
            if self.timings.first_token_at is None:
                self.timings.first_token_at = time.monotonic()
            self.completion_tokens += chunk.new_tokens
            self.worker.stats.count_tokens(chunk.new_tokens)
        if chunk.text:
            stream = self.stream
            stream.feed(chunk.text)
            if (
                self.timings.thinking_ended_at is None
                and THINK_CLOSE in stream.text[-(len(chunk.text) + len(THINK_CLOSE)) :]
            ):
                self.timings.thinking_ended_at = time.monotonic()
            if not stream.has_sent or stream.pending_chars >= self.config.flush_max_chars:
                await self.worker.outbox.flush(self)
        if chunk.finished:
            self.finish_reason = chunk.finish_reason

    # --- engine request ---------------------------------------------------------------------

    def _prompt_ids(self, text: str) -> list[int]:
        # A hint is asked for as a full solution too: the server cuts the hint from it (hints.py).
        return self.engine.prompt_ids(text.strip(), reasoning_suffix=True)

    def _room(self, prompt_ids: list[int]) -> int:
        return self.config.engine.max_model_len - len(prompt_ids)

    def _start_request(self, prompt_ids: list[int]) -> None:
        params = {
            "max_tokens": min(self.config.sampling.max_new_tokens, self._room(prompt_ids)),
            "temperature": self.config.sampling.temperature,
            "top_p": self.config.sampling.top_p,
        }
        self.request = EngineRequest(self.engine, self.request_id, prompt_ids, params)

    # --- the end ----------------------------------------------------------------------------

    async def _finish(self, job: records.GenerationJob, *, status: str) -> None:
        reasoning, answer, _finished_thinking = self.stream.final_split()
        final_answer = self.stream.final_answer()
        completion_tokens = self.completion_tokens
        if isinstance(self.stream, HintStream) and answer:
            # A hint is cut from a hidden worked solution that every hint of the attempt shares:
            # its count is the hint's own tokens, not the solution's behind it.
            completion_tokens = self.engine.text_tokens(answer)
        # Graded once, here (answer key, else the exact calculation), in one thread call; the
        # page only reads what is stored.
        grade = (
            await asyncio.to_thread(records.verdict_for, job, final_answer or None)
            if status == GenerationStatus.DONE
            else records.Grade()
        )
        timings = self.timings
        outcome = records.GenerationOutcome(
            status=status,
            reasoning=reasoning,
            answer=answer,
            final_answer=final_answer,
            verdict=grade.verdict,
            verdict_source=grade.source,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=completion_tokens,
            time_to_first_token_ms=timings.ms_since_start(timings.first_token_at),
            thinking_ms=(
                (timings.thinking_ended_at - timings.first_token_at) * 1000
                if timings.thinking_ended_at is not None
                and timings.first_token_at is not None
                and self.stream.shows_reasoning
                else None
            ),
            duration_ms=timings.ms_since_start(time.monotonic()),
            confidence=self.confidence.score(),
            cut_off=self.finish_reason == "length",
        )
        await self._store_and_announce(outcome)

    async def _finish_failed(self, *, code: str, message: str) -> None:
        reasoning, answer, _ = self.stream.final_split()
        outcome = records.GenerationOutcome(
            status=GenerationStatus.FAILED,
            reasoning=reasoning,
            answer=answer,
            final_answer="",
            verdict="",
            prompt_tokens=self.prompt_tokens,
            completion_tokens=0,
            time_to_first_token_ms=None,
            duration_ms=self.timings.ms_since_start(time.monotonic()),
            error=message,
        )
        await self._store_and_announce(outcome, error=events.error(code=code, message=message))

    async def _store_and_announce(
        self, outcome: records.GenerationOutcome, error: dict | None = None
    ) -> None:
        """Store the row, then tell the browsers, then ack: in that order, so a client that
        connects in between reads a finished row, and a crash before the ack re-runs nothing
        (a re-claimed finished row is only acknowledged)."""
        worker, generation_id = self.worker, self.generation_id
        stored = await db_call(records.generation_finish)(
            generation_id=generation_id, worker_id=worker.worker_id, outcome=outcome
        )
        if not stored:
            return  # another worker owns it now; its entry is no longer ours to ack
        if outcome.status == GenerationStatus.FAILED:
            worker.stats.failed += 1
        else:
            worker.stats.completed += 1
        await worker.outbox.send(
            generation_id,
            *([error] if error is not None else []),
            events.done(
                status=outcome.status,
                final_answer=outcome.final_answer,
                verdict=outcome.verdict,
                model_version=self.engine.spec.label,
                completion_tokens=outcome.completion_tokens,
                time_to_first_token_ms=outcome.time_to_first_token_ms,
                duration_ms=outcome.duration_ms,
                seq=self.stream.seq,
            ),
            expire=True,
        )
        await worker.queue.ack(self.entry.entry_id)
        await worker.redis.delete(cancel_key(generation_id))

    async def _requeue(self) -> None:
        """Hand the unfinished generation back to the queue (shutdown, or a drain that timed
        out): a new entry, then the old one acknowledged, so it is never in neither."""
        worker, generation_id = self.worker, self.generation_id
        if await db_call(records.generation_requeue)(
            generation_id=generation_id, worker_id=worker.worker_id
        ):
            await enqueue_generation_async(
                worker.redis,
                stream=self.config.stream,
                generation_id=generation_id,
                prompt_text=self.entry.prompt_text,
                hint_index=self.entry.hint_index,
            )
            await worker.outbox.send(generation_id, events.status_queued(position=None))
            await worker.queue.ack(self.entry.entry_id)
            logger.info("generation %s handed back to the queue", generation_id)
