"""The worker's logic with a stand-in engine, on the real PostgreSQL, Redis and channel layer.

Everything but the engine is real: the worker claims from a Redis Stream (a private one per test),
appends events to each generation's event log (the test follows it like a page's consumer would)
and stores rows in the test database. The real vLLM
engine is exercised in tests/worker/inference/test_inference_integration.py.
"""

import asyncio
import contextlib
import dataclasses
import datetime
import json
import math
import subprocess
import time

import psutil
import pytest
import redis
import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper

from inference_contract.event_log import decode, read_log_async
from inference_contract.protocol import (
    SWAP_LOG_KEY,
    cancel_key,
    event_log_key,
    heartbeat_key,
    stream_entry,
)
from inference_contract.redis_retry import async_retry_options
from ringmodel.checkpoint import CheckpointError
from tests.fixtures.services import free_port
from webapp.problems.content_key import problem_content_key
from webapp.problems.models import Problem
from webapp.registry.models import ModelVersion, VersionStatus
from webapp.tutoring import events
from webapp.tutoring.check_selectors import CHECKED, AnswerCheck, generation_answer_check
from webapp.tutoring.generation_services import generation_cancel
from webapp.tutoring.models import Attempt, Generation
from worker.inference.config import EngineSettings, WorkerConfig
from worker.inference.engine import ModelSpec
from worker.inference.engine_check import CheckReport
from worker.inference.worker import InferenceWorker

from .scripted_engine import ScriptedEngine

# redis_url: a clean Redis database for the session (event logs are named after row ids).
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("redis_url")]

SOLUTION = (
    "<think>Add the tens: 40 + 30 = 70. Add the ones: 7 + 8 = 15. "
    "Together 70 + 15 = 85.</think>The sum is \\boxed{85}."
)


class Engines:
    """The engine factory handed to the worker: which text each checkpoint path produces."""

    def __init__(self, **options) -> None:
        self.completions: dict[str, str] = {}
        self.started: list[ScriptedEngine] = []
        self.options = options

    async def __call__(self, spec: ModelSpec, settings: EngineSettings) -> ScriptedEngine:
        if spec.path == "vllm-cannot-load":
            raise RuntimeError("Engine core initialization failed")
        engine = ScriptedEngine(spec, self.completions.get(spec.path, SOLUTION), **self.options)
        self.started.append(engine)
        return engine


def load_reference(path: str) -> object:
    if path == "corrupt":
        raise CheckpointError("corrupt: model.safetensors is corrupt (sha256 does not match)")
    return object()


async def check(engine, spec: ModelSpec) -> CheckReport:
    if spec.path == "wrong-numbers":
        return CheckReport(False, 3.1, 40, ("probe 0: log-prob of token 7 differs by 3.1 nats",))
    return CheckReport(True, 1e-6, 40, ())


def scripted_worker(config: WorkerConfig, engines) -> InferenceWorker:
    """A real worker whose engines are `engines`' scripted ones, its checks the stand-ins above."""
    return InferenceWorker(
        config, engine_factory=engines, reference_loader=load_reference, engine_checker=check
    )


async def wait_until(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def serving(worker: InferenceWorker):
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await wait_until(lambda: worker.state == "serving" or task.done(), what="serving")
    assert not task.done(), task.exception()
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


class LogListener:
    """Follows a generation's event log the way a page's consumer does (from its first entry)."""

    def __init__(self, generation_id: int, *, redis_url: str | None = None) -> None:
        self.generation_id = generation_id
        self.client = aioredis.Redis.from_url(
            redis_url or settings.REDIS_URL, decode_responses=True
        )
        self.last_id = "0-0"
        self.pending: list[dict] = []
        self.events: list[dict] = []

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.client.aclose()

    async def next_event(self, timeout: float = 10.0) -> dict:
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.pending:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"no event for generation {self.generation_id}")
            with contextlib.suppress(redis.ConnectionError):
                response = await self.client.xread(
                    {event_log_key(self.generation_id): self.last_id},
                    block=max(1, int(remaining * 1000)),
                )
                for _key, entries in response:
                    for entry_id, batch in decode(entries):
                        self.last_id = entry_id
                        self.pending.extend(batch)
        event = self.pending.pop(0)
        self.events.append(event)
        return event

    async def until(self, kind: str, timeout: float = 15.0) -> dict:
        while True:
            event = await self.next_event(timeout)
            if event["type"] == kind:
                return event


def new_generation(student, problem, kind: str = "solution") -> Generation:
    attempt = Attempt.objects.create(student=student, problem=problem)
    return Generation.objects.create(attempt=attempt, kind=kind)


async def enqueue(aredis, config, generation: Generation, **fields) -> None:
    """Queue `generation` as generation_enqueue does: kind and text travel with the id."""
    fields.setdefault("kind", generation.kind)
    fields.setdefault("prompt_text", generation.attempt.problem.statement)
    await aredis.xadd(config.stream, stream_entry(generation.pk, **fields))


def text_of(events: list[dict], channel: str) -> str:
    return "".join(e["text"] for e in events if e["type"] == "delta" and e["channel"] == channel)


async def test_a_generation_streams_coalesced_deltas_and_is_stored(
    config, aredis, student, problem
):
    engines = Engines()
    worker = scripted_worker(config, engines)
    generation = await sync_to_async(new_generation)(student, problem)
    async with serving(worker), LogListener(generation.pk) as listener:
        await enqueue(aredis, config, generation)
        done = await listener.until("done")

    assert listener.events[0] == {"type": "status", "status": "running", "model_version": "v1-path"}
    deltas = [e for e in listener.events if e["type"] == "delta"]
    assert [d["seq"] for d in deltas] == list(range(1, len(deltas) + 1))
    # Coalesced: far fewer messages than the engine's 3-character steps.
    assert len(deltas) < len(SOLUTION) / 3 / 2
    assert text_of(listener.events, "reasoning").startswith("Add the tens")
    assert text_of(listener.events, "answer") == "The sum is \\boxed{85}."
    assert done["status"] == "done"
    assert done["final_answer"] == "85"
    assert done["verdict"] == "correct"
    assert done["model_version"] == "v1-path"

    await generation.arefresh_from_db()
    assert generation.status == "done"
    assert generation.reasoning == text_of(listener.events, "reasoning")
    assert generation.answer == text_of(listener.events, "answer")
    assert (generation.final_answer, generation.verdict) == ("85", "correct")
    assert generation.verdict_source == "answer_key"
    assert generation.completion_tokens == len(SOLUTION) + 1
    assert generation.prompt_tokens > 0
    assert 0 < generation.time_to_first_token_ms <= generation.duration_ms
    # "Thought for N s" on a reopened page: first token to </think>.
    assert 0 <= generation.thinking_ms <= generation.duration_ms
    assert generation.worker_id == config.worker_id
    assert generation.model_version_label == "v1-path"
    assert generation.finished_at is not None

    replay = await read_log_async(aredis, generation.pk)
    assert (replay.status, replay.seq) == ("done", deltas[-1]["seq"])
    assert replay.answer == generation.answer
    assert await worker.queue.depth() == {"waiting": 0, "pending": 0}
    # The heartbeat key is removed when the worker stops.
    assert not await aredis.exists(heartbeat_key(config.worker_id))


async def test_the_answers_confidence_and_a_cut_off_are_stored(config, aredis, student, problem):
    engines = Engines(weakest_logprob=math.log(0.25))
    worker = scripted_worker(config, engines)
    finished = await sync_to_async(new_generation)(student, problem)
    async with serving(worker), LogListener(finished.pk) as listener:
        await enqueue(aredis, config, finished)
        await listener.until("done")
    await finished.arefresh_from_db()
    assert finished.confidence == pytest.approx(0.25)
    assert not finished.cut_off

    short = dataclasses.replace(
        config, sampling=dataclasses.replace(config.sampling, max_new_tokens=12)
    )
    worker = scripted_worker(short, Engines())
    cut = await sync_to_async(new_generation)(student, problem)
    async with serving(worker), LogListener(cut.pk) as listener:
        await enqueue(aredis, short, cut)
        done = await listener.until("done")
    await cut.arefresh_from_db()
    assert done["status"] == "done" and cut.cut_off
    assert cut.confidence == pytest.approx(math.exp(-0.01))


async def test_a_hint_streams_only_the_step_the_server_cut_never_the_answer(
    config, aredis, student, problem
):
    engines = Engines()
    engines.completions["v1-path"] = (
        "<think>47 = 40 + 7 and 38 = 30 + 8\nadd the tens: 40 + 30 = 70\n"
        "add the ones: 7 + 8 = 15\ntogether 70 + 15 = 85</think>The sum is \\boxed{85}."
    )
    worker = scripted_worker(config, engines)
    attempt = await Attempt.objects.acreate(student=student, problem=problem)
    generation = await Generation.objects.acreate(attempt=attempt, kind="hint", hint_index=1)
    async with serving(worker), LogListener(generation.pk) as listener:
        await enqueue(aredis, config, generation, hint_index=1)
        done = await listener.until("done")

    deltas = [e for e in listener.events if e["type"] == "delta"]
    assert [(d["seq"], d["channel"], d["text"]) for d in deltas] == [
        (1, "answer", "add the tens: 40 + 30 = 70")
    ]
    # Nothing the model wrote beyond the hint went out: not its reasoning, not its answer.
    assert "85" not in json.dumps(listener.events)
    assert (done["status"], done["final_answer"], done["verdict"]) == ("done", "", "")
    await generation.arefresh_from_db()
    assert (generation.reasoning, generation.answer) == ("", "add the tens: 40 + 30 = 70")
    assert (generation.final_answer, generation.thinking_ms) == ("", None)
    assert (generation.verdict, generation.verdict_source) == ("", "")  # hints are not graded
    # The hint's own length, not the hidden solution's (which every hint would share).
    assert generation.completion_tokens == len("add the tens: 40 + 30 = 70")
    replay = await read_log_async(aredis, generation.pk)
    assert (replay.reasoning, replay.answer) == ("", generation.answer)


def typed_problem(statement: str) -> Problem:
    """A question a student typed: no answer key."""
    return Problem.objects.create(
        statement=statement, content_key=problem_content_key(statement), answer_kind="none"
    )


def answer_check_of(generation_id: int) -> AnswerCheck | None:
    generation = Generation.objects.select_related("attempt__problem").get(pk=generation_id)
    return generation_answer_check(generation=generation)


async def test_a_typed_calculation_is_checked_once_when_the_answer_is_stored(
    config, aredis, student, monkeypatch
):
    """No answer key, but the statement is a pure calculation: the worker checks the answer
    against its exact value when it stores the row (the same thread call as the answer key's
    check), and stores the verdict with its source. Showing the check then only reads it: the
    answer checker is not called again, however often the page is drawn."""
    problem = await sync_to_async(typed_problem)("What is 47 + 38?")
    worker = scripted_worker(config, Engines())
    generation = await sync_to_async(new_generation)(student, problem)
    async with serving(worker), LogListener(generation.pk) as listener:
        await enqueue(aredis, config, generation)
        done = await listener.until("done")

    assert (done["status"], done["final_answer"], done["verdict"]) == ("done", "85", "correct")
    await generation.arefresh_from_db()
    assert (generation.verdict, generation.verdict_source) == ("correct", "calculation")

    def checker(*args, **kwargs):
        raise AssertionError("the page ran the answer checker")

    monkeypatch.setattr("webapp.core.answer_checks.answer_verdict", checker)
    monkeypatch.setattr("webapp.tutoring.check_selectors.calculation_verdict", checker)
    check = await sync_to_async(answer_check_of)(generation.pk)
    assert (check.state, check.source, check.computed) == (CHECKED, "calculation", "47 + 38 = 85")


async def test_the_heartbeat_reports_the_served_version_and_load(config, aredis, student, problem):
    version = await ModelVersion.objects.acreate(
        label="ring-tiny-v7", path="v7-path", status=VersionStatus.CHAMPION
    )
    worker = scripted_worker(config, Engines())
    async with serving(worker):
        await wait_until(lambda: aredis.exists(heartbeat_key(config.worker_id)), what="heartbeat")
        beat = json.loads(await aredis.get(heartbeat_key(config.worker_id)))
        ttl = await aredis.ttl(heartbeat_key(config.worker_id))
    assert beat["state"] == "serving"
    assert (beat["model_version"], beat["model_version_id"]) == ("ring-tiny-v7", version.pk)
    assert beat["worker_id"] == config.worker_id
    assert {"in_flight", "tokens_per_s", "pid", "host", "started_at", "last_swap_error"} <= set(
        beat
    )
    assert 0 < ttl <= config.heartbeat_ttl_s


async def test_cancel_aborts_the_request_inside_the_engine(config, aredis, student, problem):
    engines = Engines(step_delay_s=0.02)
    engines.completions["v1-path"] = "<think>" + "a long line of reasoning " * 40
    worker = scripted_worker(config, engines)
    generation = await sync_to_async(new_generation)(student, problem)
    async with serving(worker), LogListener(generation.pk) as listener:
        await enqueue(aredis, config, generation)
        await listener.until("delta")
        await sync_to_async(generation_cancel)(generation=generation, user=student)
        done = await listener.until("done")

    engine = engines.started[0]
    assert engine.aborted == set(engine.requests)
    assert done["status"] == "cancelled"
    await generation.arefresh_from_db()
    assert generation.status == "cancelled"
    assert generation.cancel_requested
    assert 0 < generation.completion_tokens < len(engines.completions["v1-path"])
    assert (generation.verdict, generation.verdict_source) == ("", "")
    assert await worker.queue.depth() == {"waiting": 0, "pending": 0}


async def test_a_stop_asked_before_a_reclaim_is_honoured_without_streaming(
    config, aredis, student, problem
):
    """The student pressed Stop while the generation's first worker was dying: the cancel key is
    there when the next worker claims it."""
    engines = Engines()
    worker = scripted_worker(config, engines)
    generation = await sync_to_async(new_generation)(student, problem)
    await Generation.objects.filter(pk=generation.pk).aupdate(
        status="running", cancel_requested=True
    )
    await aredis.set(cancel_key(generation.pk), "1", ex=60)
    async with serving(worker), LogListener(generation.pk) as listener:
        await enqueue(aredis, config, generation)
        done = await listener.until("done")
    assert done["status"] == "cancelled"
    # The engine request started with the claim was dropped, and nothing was streamed.
    engine = engines.started[0]
    assert engine.dropped == set(engine.requests)
    assert not [e for e in listener.events if e["type"] == "delta"]


async def test_a_stop_recorded_only_in_the_row_still_ends_the_answer(
    config, aredis, student, problem
):
    engines = Engines(step_delay_s=0.02)
    engines.completions["v1-path"] = "<think>" + "a long line of reasoning " * 40
    worker = scripted_worker(config, engines)
    generation = await sync_to_async(new_generation)(student, problem)
    await Generation.objects.filter(pk=generation.pk).aupdate(
        status="running", cancel_requested=True
    )
    async with serving(worker), LogListener(generation.pk) as listener:
        await enqueue(aredis, config, generation)
        done = await listener.until("done")
    assert done["status"] == "cancelled"
    engine = engines.started[0]
    assert engine.aborted == set(engine.requests)
    await generation.arefresh_from_db()
    assert generation.completion_tokens < len(engines.completions["v1-path"]) / 2


async def test_a_swap_pins_running_answers_and_moves_new_ones(config, aredis, student, problem):
    engines = Engines(step_delay_s=0.01)
    engines.completions["v1-path"] = "<think>" + "old " * 50 + "</think>\\boxed{85}"
    engines.completions["v2-path"] = "<think>new</think>\\boxed{85}"
    worker = scripted_worker(config, engines)
    first = await sync_to_async(new_generation)(student, problem)
    second = await sync_to_async(new_generation)(student, problem)
    async with serving(worker):
        async with LogListener(first.pk) as old_listener:
            await enqueue(aredis, config, first)
            await old_listener.until("delta")
            worker.request_swap(ModelSpec(None, "v2", "v2-path"), explicit=True)
            await wait_until(lambda: worker.engine.spec.label == "v2", what="swap")
            async with LogListener(second.pk) as new_listener:
                await enqueue(aredis, config, second)
                new_done = await new_listener.until("done")
            old_done = await old_listener.until("done")
        await wait_until(lambda: engines.started[0].closed, what="old engine shut down")
        swap_log = [json.loads(x) for x in await aredis.lrange(SWAP_LOG_KEY, 0, 5)]

    assert old_done["model_version"] == "v1-path" and old_done["status"] == "done"
    assert new_done["model_version"] == "v2" and new_done["status"] == "done"
    await first.arefresh_from_db()
    await second.arefresh_from_db()
    assert "new" not in first.reasoning and first.reasoning.count("old") == 50
    assert second.reasoning == "new"
    assert (first.model_version_label, second.model_version_label) == ("v1-path", "v2")
    assert worker.last_swap["ok"] and worker.last_swap["label"] == "v2"
    assert any(r["worker_id"] == config.worker_id and r["ok"] for r in swap_log)


@pytest.mark.parametrize(
    "path,reason",
    [
        ("corrupt", "sha256 does not match"),
        ("wrong-numbers", "differs by 3.1 nats"),
        ("vllm-cannot-load", "Engine core initialization failed"),
    ],
)
async def test_a_refused_checkpoint_leaves_the_old_version_serving(
    config, aredis, student, problem, path, reason
):
    engines = Engines()
    worker = scripted_worker(config, engines)
    generation = await sync_to_async(new_generation)(student, problem)
    async with serving(worker):
        worker.request_swap(ModelSpec(3, "broken", path), explicit=True)

        async def reported() -> dict | None:
            beat = json.loads(await aredis.get(heartbeat_key(config.worker_id)) or "{}")
            return beat if beat.get("last_swap") else None

        await wait_until(reported, what="swap result in the heartbeat")
        beat = await reported()
        async with LogListener(generation.pk) as listener:
            await enqueue(aredis, config, generation)
            done = await listener.until("done")

    assert worker.engine.spec.path == "v1-path"
    assert not worker.last_swap["ok"] and reason in worker.last_swap["error"]
    assert reason in beat["last_swap_error"] and beat["model_version"] == "v1-path"
    assert done["status"] == "done" and done["model_version"] == "v1-path"
    # An engine that started but failed its check was shut down, not left running.
    assert all(engine.closed for engine in engines.started[1:])


async def test_a_prompt_longer_than_the_model_takes_fails_with_a_clear_error(
    config, aredis, student, problem
):
    worker = scripted_worker(config, Engines())
    generation = await sync_to_async(new_generation)(student, problem)
    async with serving(worker), LogListener(generation.pk) as listener:
        await enqueue(aredis, config, generation, prompt_text="x" * 500)
        error = await listener.until("error")
        done = await listener.until("done")
    assert error["code"] == "prompt_too_long"
    assert "too long" in error["message"] and "Traceback" not in error["message"]
    assert done["status"] == "failed"
    await generation.arefresh_from_db()
    assert generation.status == "failed" and "too long" in generation.error


async def test_an_entry_left_by_a_dead_worker_is_completed(config, aredis, student, problem):
    generation = await sync_to_async(new_generation)(student, problem)
    await aredis.xgroup_create(config.stream, config.group, id="0", mkstream=True)
    await enqueue(aredis, config, generation)
    # A worker that claimed the entry, streamed a little and died.
    await aredis.xreadgroup(config.group, "dead-worker", {config.stream: ">"}, count=1)
    await Generation.objects.filter(pk=generation.pk).aupdate(
        status="running", worker_id="dead-worker"
    )
    await aredis.xadd(
        event_log_key(generation.pk),
        {
            "e": json.dumps(
                [events.delta(seq=n, channel="reasoning", text="x") for n in (1, 2, 3, 4)]
            )
        },
    )

    worker = scripted_worker(config, Engines())
    async with serving(worker), LogListener(generation.pk) as listener:
        done = await listener.until("done", timeout=20)
    # A page that follows the log sees the dead worker's four deltas, then the restart.
    reset = next(e for e in listener.events if e["type"] == "snapshot")
    assert (reset["seq"], reset["reasoning"], reset["answer"]) == (4, "", "")
    after_reset = listener.events[listener.events.index(reset) + 1 :]
    first_delta = next(e for e in after_reset if e["type"] == "delta")
    assert first_delta["seq"] == 5
    assert done["status"] == "done"
    await generation.arefresh_from_db()
    assert generation.worker_id == config.worker_id and generation.status == "done"


async def test_unfinished_answers_go_back_to_the_queue_on_shutdown(
    config, aredis, student, problem
):
    engines = Engines(step_delay_s=0.05)
    engines.completions["v1-path"] = "<think>" + "slow " * 200
    worker = scripted_worker(config, engines)
    generation = await sync_to_async(new_generation)(student, problem)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    async with LogListener(generation.pk) as listener:
        await enqueue(aredis, config, generation)
        await listener.until("delta")
        worker_shutdown = worker._shutdown

        async def quick_shutdown(grace_s: float = 0.1) -> None:
            await worker_shutdown(grace_s=grace_s)

        worker._shutdown = quick_shutdown
        stop.set()
        await asyncio.wait_for(task, 30)
        queued = await listener.until("status")
    assert queued["status"] == "queued"
    await generation.arefresh_from_db()
    assert (generation.status, generation.worker_id) == ("queued", "")
    entries = await aredis.xrange(config.stream)
    assert entries[-1][1]["generation_id"] == str(generation.pk)
    # The old entry is acknowledged, the new one waits for any worker.
    assert (await worker.queue.client.xpending(config.stream, config.group))["pending"] == 0


async def test_a_deleted_registry_row_does_not_stop_the_worker(config, aredis, student, problem):
    version = await ModelVersion.objects.acreate(
        label="ring-tiny-v8", path="v8-path", status=VersionStatus.CHAMPION
    )
    worker = scripted_worker(config, Engines())
    generation = await sync_to_async(new_generation)(student, problem)
    async with serving(worker):
        await version.adelete()
        async with LogListener(generation.pk) as listener:
            await enqueue(aredis, config, generation)
            done = await listener.until("done")
    assert done["status"] == "done" and done["model_version"] == "ring-tiny-v8"
    await generation.arefresh_from_db()
    assert generation.model_version_id is None
    assert generation.model_version_label == "ring-tiny-v8"


async def test_an_entry_with_only_an_id_reads_the_problem_from_the_row(
    config, aredis, student, problem
):
    engines = Engines()
    worker = scripted_worker(config, engines)
    generation = await sync_to_async(new_generation)(student, problem)
    async with serving(worker), LogListener(generation.pk) as listener:
        await aredis.xadd(config.stream, stream_entry(generation.pk))
        done = await listener.until("done")
    assert done["status"] == "done" and done["verdict"] == "correct"
    assert len(engines.started[0].requests) == 1


async def test_a_request_started_before_the_claim_is_dropped_when_the_row_is_finished(
    config, aredis, student, problem
):
    engines = Engines(step_delay_s=0.05)
    worker = scripted_worker(config, engines)
    generation = await sync_to_async(new_generation)(student, problem)
    await Generation.objects.filter(pk=generation.pk).aupdate(status="cancelled")
    async with serving(worker):
        await enqueue(aredis, config, generation)
        await wait_until(lambda: engines.started[0].dropped, what="request dropped")

        async def acknowledged() -> bool:
            return await worker.queue.depth() == {"waiting": 0, "pending": 0}

        await wait_until(acknowledged, what="entry acknowledged")
    assert engines.started[0].dropped == set(engines.started[0].requests)


async def test_a_worker_that_missed_the_message_catches_up_with_the_champion(
    config, aredis, student, problem
):
    engines = Engines()
    worker = scripted_worker(config.with_overrides(reconcile_interval_s=0.2), engines)
    async with serving(worker):
        assert worker.engine.spec.path == "v1-path"
        broken = await ModelVersion.objects.acreate(
            label="ring-tiny-broken", path="corrupt", status=VersionStatus.CHAMPION
        )
        await wait_until(lambda: worker.last_swap is not None, what="first reconcile")
        assert not worker.last_swap["ok"]
        await asyncio.sleep(0.6)  # a refused champion is not retried on every pass
        assert worker.last_swap["label"] == "ring-tiny-broken"
        assert len(engines.started) == 1

        await ModelVersion.objects.filter(pk=broken.pk).aupdate(status=VersionStatus.RETIRED)
        good = await ModelVersion.objects.acreate(
            label="ring-tiny-v9", path="v9-path", status=VersionStatus.CHAMPION
        )
        await wait_until(lambda: worker.engine.spec.label == "ring-tiny-v9", what="catch-up")
    assert worker.engine.spec.model_version_id == good.pk


def terminate_this_process_backends(*, opened_after: datetime.datetime) -> int:
    """pg_terminate_backend on the PostgreSQL connections this process opened after
    `opened_after` (the worker's, not the test's own), matched by client port: the server is
    shared, nobody else's is touched."""
    port = int(connection.settings_dict.get("PORT") or 5432)
    ours = [
        c.laddr.port
        for c in psutil.Process().net_connections("tcp")
        if c.raddr and c.raddr.port == port
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
            " AND client_port = ANY(%s) AND backend_start > %s",
            [ours, opened_after],
        )
        return cursor.rowcount


async def test_database_connections_killed_mid_answer_fail_no_generation(
    config, aredis, student, problem
):
    """The worker's PostgreSQL connections are terminated while answers stream (what a
    PostgreSQL restart does to them; the shared server itself is not ours to restart): every
    answer is stored `done`, the worker reconnects."""
    engines = Engines(step_delay_s=0.05)
    engines.completions["v1-path"] = "<think>" + "one step; " * 20 + "</think>So \\boxed{85}."
    worker = scripted_worker(config, engines)
    generations = [await sync_to_async(new_generation)(student, problem) for _ in range(6)]
    worker_started = datetime.datetime.now(datetime.UTC)
    async with serving(worker):
        listeners = [LogListener(g.pk) for g in generations]
        for generation in generations:
            await enqueue(aredis, config, generation)
        for listener in listeners:
            await listener.until("delta")
        killed = await sync_to_async(terminate_this_process_backends)(opened_after=worker_started)
        assert killed >= 1
        done = [await listener.until("done", timeout=30) for listener in listeners]
        for listener in listeners:
            await listener.__aexit__(None, None, None)
    assert [d["status"] for d in done] == ["done"] * len(generations)
    for generation in generations:
        await generation.arefresh_from_db()
        assert (generation.status, generation.error) == ("done", "")


def test_the_flush_period_stretches_to_keep_the_message_rate_bounded(config):
    worker = InferenceWorker(
        config.with_overrides(flush_interval_ms=40, max_messages_per_s=300),
        engine_factory=Engines(),
    )
    assert worker.flush_period_s() == pytest.approx(0.040)
    worker.running = {i: object() for i in range(8)}
    assert worker.flush_period_s() == pytest.approx(0.040)  # 8 streams x 25/s < 300/s
    worker.running = {i: object() for i in range(32)}
    assert worker.flush_period_s() == pytest.approx(32 / 300)  # ~9 messages/s per stream


class OwnRedis:
    """A redis-server of this test's own on a free port (the shared one is never restarted)."""

    def __init__(self, directory) -> None:
        self.port = free_port()
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--dir", str(self.directory),
             "--save", "3600 1", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url)
        for _ in range(100):
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    break
            time.sleep(0.05)
        client.close()

    def restart(self, *, down_s: float) -> None:
        """Shut down (saving the data set, as a maintenance restart does), wait, start again."""
        with contextlib.suppress(redis.ConnectionError):
            redis.Redis.from_url(self.url).shutdown(save=True)
        self.process.wait(timeout=10)
        time.sleep(down_s)
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def own_redis(tmp_path):
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


async def test_a_redis_restart_mid_answer_fails_no_generation(config, student, problem, own_redis):
    """Redis goes down for 3 s while one answer streams and another is being asked: both finish,
    and each listener rebuilds exactly the stored text (no delta lost or repeated)."""
    config = dataclasses.replace(config, redis_url=own_redis.url)
    engines = Engines(step_delay_s=0.08)
    engines.completions["v1-path"] = (
        "<think>" + "one more careful step; " * 10 + "</think>So the sum is \\boxed{85}."
    )
    worker = scripted_worker(config, engines)
    site_side = aioredis.Redis.from_url(
        own_redis.url, decode_responses=True, **async_retry_options()
    )
    first, second = (
        await sync_to_async(new_generation)(student, problem),
        await sync_to_async(new_generation)(student, problem),
    )
    try:
        async with (
            serving(worker),
            LogListener(first.pk, redis_url=own_redis.url) as one,
            LogListener(second.pk, redis_url=own_redis.url) as two,
        ):
            await enqueue(site_side, config, first)
            await one.until("delta")
            restart = asyncio.ensure_future(asyncio.to_thread(own_redis.restart, down_s=3.0))
            await wait_until(lambda: own_redis.process.poll() is not None, what="redis down")
            # Asked while Redis is down: the push waits for Redis instead of failing.
            await enqueue(site_side, config, second)
            await restart
            done_one = await one.until("done", timeout=60)
            done_two = await two.until("done", timeout=60)
    finally:
        await site_side.aclose()

    assert (done_one["status"], done_two["status"]) == ("done", "done")
    for generation, listener in ((first, one), (second, two)):
        await generation.arefresh_from_db()
        assert generation.status == "done", generation.error
        deltas = [e for e in listener.events if e["type"] == "delta"]
        assert [d["seq"] for d in deltas] == list(range(1, len(deltas) + 1))
        assert text_of(listener.events, "reasoning") == generation.reasoning
        assert text_of(listener.events, "answer") == generation.answer
        assert generation.final_answer == "85"


async def test_a_generation_costs_at_most_4_commits_and_few_redis_commands(
    config, student, problem, own_redis, settings, monkeypatch
):
    """The round trips of four generations, each watched by a real consumer: PostgreSQL
    transactions (every commit and every statement run outside one, counted on Django's
    connections in every thread) and Redis commands (INFO commandstats of a server of their own),
    per generation. The worker claims and reads the job in one transaction and stores the
    result in another; a socket opens with one (measured: 3 in all). Redis sees one XADD per
    message from the worker and about one XREAD per message from each watching socket, and some
    13 other commands per generation (measured: 134 commands for 4 generations of 10 messages
    each, no connection opened; before the event logs, 160-290 per generation; before the
    generation socket left the channel layer, 5 more and a new connection per generation)."""
    from channels.routing import URLRouter
    from channels.testing import WebsocketCommunicator

    from webapp.core.redis_client import redis_client
    from webapp.tutoring.routing import websocket_urlpatterns

    settings.REDIS_URL = own_redis.url  # the consumers read the logs from the same server
    # The channel layer too (Channels resets its layers when the setting changes): a socket that
    # used it cost a new connection and five commands per generation.
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": own_redis.url, "socket_timeout": 30}]},
        }
    }
    redis_client.cache_clear()
    config = dataclasses.replace(
        config, redis_url=own_redis.url, heartbeat_interval_s=3.0, flush_interval_ms=40
    )
    worker = scripted_worker(config, Engines(step_delay_s=0.01))
    warm_up = [await sync_to_async(new_generation)(student, problem) for _ in range(4)]
    generations = [await sync_to_async(new_generation)(student, problem) for _ in range(4)]
    admin = redis.Redis.from_url(own_redis.url, decode_responses=True)

    def redis_calls() -> dict[str, int]:
        stats = admin.info("commandstats")
        return {name: value["calls"] for name, value in stats.items()}

    transactions = []
    commit, execute = BaseDatabaseWrapper._commit, CursorWrapper._execute

    def counted_commit(self):
        transactions.append("commit")
        return commit(self)

    def counted_execute(self, sql, *args):
        if not self.db.in_atomic_block:
            transactions.append(sql[:40])  # autocommit: a transaction of its own
        return execute(self, sql, *args)

    monkeypatch.setattr(BaseDatabaseWrapper, "_commit", counted_commit)
    monkeypatch.setattr(CursorWrapper, "_execute", counted_execute)

    async def watch(batch, site_side) -> list[list[dict]]:
        """Open a socket on each generation, queue them all, read each socket until `done`."""
        sockets = []
        for generation in batch:
            socket = WebsocketCommunicator(
                URLRouter(websocket_urlpatterns), f"/ws/generations/{generation.pk}/"
            )
            socket.scope["user"] = student
            assert (await socket.connect())[0]
            sockets.append(socket)
        for generation in batch:
            await enqueue(site_side, config, generation)
        received = []
        for socket in sockets:
            seen = []
            while not seen or seen[-1]["type"] != "done":
                seen.append(await socket.receive_json_from(timeout=20))
            received.append(seen)
            await socket.disconnect()
        return received

    site_side = aioredis.Redis.from_url(own_redis.url, decode_responses=True)
    try:
        async with serving(worker):
            await watch(warm_up, site_side)  # the worker's start-up is not a generation's cost
            commits_before = len(transactions)
            calls_before = redis_calls()
            received = await watch(generations, site_side)
            calls_after = redis_calls()
            commits_after = len(transactions)
            entries = sum([await site_side.xlen(event_log_key(g.pk)) for g in generations])
    finally:
        await site_side.aclose()
        admin.close()
        redis_client.cache_clear()

    n = len(generations)
    per_generation_commits = (commits_after - commits_before) / n
    assert per_generation_commits <= 4, per_generation_commits
    spent = {
        name: calls_after[name] - calls_before.get(name, 0)
        for name in calls_after
        if name != "cmdstat_info" and calls_after[name] != calls_before.get(name, 0)
    }
    messages = entries - 2 * n  # each log also holds the `running` status and `done`
    assert spent.get("cmdstat_xadd", 0) == entries + n  # the logs, and the queue pushes
    # Pooled connections: a generation opens none (HELLO); a pool may still grow by one in a burst.
    assert spent.get("cmdstat_hello", 0) < n, spent
    assert sum(spent.values()) <= 20 * n + 2 * messages, (spent, messages)
    for generation, seen in zip(generations, received, strict=True):
        await generation.arefresh_from_db()
        assert generation.status == "done"
        assert text_of(seen, "answer") == generation.answer
