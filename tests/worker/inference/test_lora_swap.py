"""A LoRA-trained version served by hot-loading its adapter into the running engine (swap.py,
lora.py), with the scripted stand-in engine, on the real PostgreSQL and Redis like test_worker.py.

The stand-in records each request's adapter (what vLLM gets as `lora_request`) and the adapters
added and removed, so the tests see which requests carried which version.
"""

import dataclasses
import json
import os

import pytest
from asgiref.sync import sync_to_async

from inference_contract.protocol import heartbeat_key
from webapp.registry.models import ModelVersion, VersionStatus
from worker.inference.engine import ModelSpec
from worker.inference.engine_check import CheckReport
from worker.inference.worker import InferenceWorker

from .lora_files import corrupt_adapter_weights, write_lora_version
from .test_worker import (
    Engines,
    LogListener,
    enqueue,
    load_reference,
    new_generation,
    serving,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("redis_url")]

SLOW = "<think>" + "base " * 40 + "</think>\\boxed{85}"


async def check(engine, spec: ModelSpec) -> CheckReport:
    """The engine check's stand-in: fails for a version named bad-numbers, under its adapter."""
    assert engine.spec == spec
    if "bad-numbers" in spec.path:
        return CheckReport(False, 2.4, 40, ("probe 1: log-prob of token 3 differs by 2.4 nats",))
    return CheckReport(True, 1e-6, 40, ())


@pytest.fixture
def base_dir(tmp_path):
    path = tmp_path / "ring-tiny"
    path.mkdir()
    return str(path)


@pytest.fixture
def lora_config(config, base_dir):
    return config.with_overrides(
        fallback_model=base_dir,
        engine=dataclasses.replace(config.engine, enable_lora=True, max_lora_rank=16),
        drain_timeout_s=30,
    )


def lora_worker(config, engines) -> InferenceWorker:
    return InferenceWorker(
        config, engine_factory=engines, reference_loader=load_reference, engine_checker=check
    )


def version(tmp_path, name: str, base: str, **options) -> ModelSpec:
    return ModelSpec(None, name, write_lora_version(tmp_path, name, base=base, **options))


def adapter_of(engine, generation_id: int):
    """The adapter the engine request of `generation_id` carried (None: the base alone)."""
    (adapter,) = [
        a for rid, a in engine.lora_requests.items() if rid.startswith(f"gen-{generation_id}-")
    ]
    return adapter


async def swapped(worker, label: str) -> dict:
    await wait_until(
        lambda: worker.last_swap is not None and worker.last_swap["label"] == label,
        what=f"swap to {label} reported",
    )
    return worker.last_swap


async def test_a_hot_load_serves_new_answers_with_the_adapter_and_lets_running_ones_finish(
    lora_config, aredis, student, problem, tmp_path, base_dir
):
    engines = Engines(step_delay_s=0.01)
    engines.completions[base_dir] = SLOW
    worker = lora_worker(lora_config, engines)
    v2 = version(tmp_path, "v2", base_dir)
    first = await sync_to_async(new_generation)(student, problem)
    second = await sync_to_async(new_generation)(student, problem)
    async with serving(worker):
        base_label = worker.engine.spec.label
        async with LogListener(first.pk) as running:
            await enqueue(aredis, lora_config, first)
            await running.until("delta")
            worker.request_swap(v2, explicit=True)
            report = await swapped(worker, "v2")
            assert report["ok"], report
            async with LogListener(second.pk) as after:
                await enqueue(aredis, lora_config, second)
                new_done = await after.until("done")
            old_done = await running.until("done")
        beat = json.loads(await aredis.get(heartbeat_key(lora_config.worker_id)))

    (engine,) = engines.started  # no second engine
    assert report["swap_path"] == "lora-hot-load" and "rank-8" in report["reason"]
    assert adapter_of(engine, first.pk) is None  # started before the hot-load: the base
    carried = adapter_of(engine, second.pk)
    assert carried.spec == v2 and carried.path.endswith("v2-adapter")
    assert [a.spec.label for a in engine.added] == ["v2"] and not engine.removed
    assert (old_done["model_version"], new_done["model_version"]) == (base_label, "v2")
    await first.arefresh_from_db()
    await second.arefresh_from_db()
    assert (first.model_version_label, second.model_version_label) == (base_label, "v2")
    assert first.reasoning.count("base") == 40
    assert beat["model_version"] == "v2"
    assert beat["serving"]["base"] == base_label and beat["serving"]["lora"] is True
    assert beat["serving"]["adapter"]["label"] == "v2"


async def test_the_next_adapter_and_a_rollback_to_the_base_move_only_new_answers(
    lora_config, aredis, student, problem, tmp_path, base_dir
):
    engines = Engines(step_delay_s=0.01)
    worker = lora_worker(lora_config, engines)
    v2, v3 = version(tmp_path, "v2", base_dir), version(tmp_path, "v3", base_dir)
    generations = [await sync_to_async(new_generation)(student, problem) for _ in range(4)]

    async def answer(generation) -> dict:
        async with LogListener(generation.pk) as listener:
            await enqueue(aredis, lora_config, generation)
            return await listener.until("done")

    async with serving(worker):
        base_spec = worker.engine.spec
        on_base = await answer(generations[0])
        worker.request_swap(v2, explicit=True)
        await swapped(worker, "v2")
        on_v2 = await answer(generations[1])
        worker.request_swap(v3, explicit=True)
        await swapped(worker, "v3")
        on_v3 = await answer(generations[2])
        (engine,) = engines.started
        await wait_until(lambda: [a.spec.label for a in engine.removed] == ["v2"], what="v2 out")
        worker.request_swap(base_spec, explicit=True)
        rollback = await swapped(worker, base_spec.label)
        back_on_base = await answer(generations[3])
        await wait_until(lambda: len(engine.removed) == 2, what="v3 removed")

    assert [d["model_version"] for d in (on_base, on_v2, on_v3, back_on_base)] == [
        base_spec.label,
        "v2",
        "v3",
        base_spec.label,
    ]
    carried = [adapter_of(engine, g.pk) for g in generations]
    assert carried[0] is None and carried[3] is None  # the rollback: no LoRARequest
    assert (carried[1].spec.label, carried[2].spec.label) == ("v2", "v3")
    assert carried[1].int_id != carried[2].int_id
    assert rollback["ok"] and rollback["swap_path"] == "base"
    assert [a.spec.label for a in engine.removed] == ["v2", "v3"]
    assert len(engines.started) == 1 and not engine.adapters


async def test_the_old_adapter_stays_loaded_until_its_running_answer_ends(
    lora_config, aredis, student, problem, tmp_path, base_dir
):
    engines = Engines(step_delay_s=0.01)
    v2, v3 = version(tmp_path, "v2", base_dir), version(tmp_path, "v3", base_dir)
    engines.completions[base_dir] = SLOW  # every request on the one engine is slow
    worker = lora_worker(lora_config, engines)
    generation = await sync_to_async(new_generation)(student, problem)
    async with serving(worker):
        worker.request_swap(v2, explicit=True)
        await swapped(worker, "v2")
        async with LogListener(generation.pk) as listener:
            await enqueue(aredis, lora_config, generation)
            await listener.until("delta")
            worker.request_swap(v3, explicit=True)
            await swapped(worker, "v3")
            (engine,) = engines.started
            assert not engine.removed  # v2's answer is still streaming under v2
            done = await listener.until("done")
        await wait_until(lambda: engine.removed, what="v2 removed after its answer")
    assert done["model_version"] == "v2" and done["status"] == "done"
    assert adapter_of(engine, generation.pk).spec.label == "v2"
    assert [a.spec.label for a in engine.removed] == ["v2"]


@pytest.mark.parametrize(
    "failure,reason",
    [
        ("add_lora", "Loading lora"),
        ("corrupt", "adapter_model.safetensors is missing or does not match its manifest"),
        ("check", "engine check under the adapter failed"),
    ],
)
async def test_a_refused_adapter_leaves_the_old_version_serving(
    lora_config, aredis, student, problem, tmp_path, base_dir, failure, reason
):
    engines = Engines()
    worker = lora_worker(lora_config, engines)
    bad = version(tmp_path, "bad-numbers" if failure == "check" else "v2", base_dir)
    if failure == "corrupt":
        corrupt_adapter_weights(bad.path)
    generation = await sync_to_async(new_generation)(student, problem)
    async with serving(worker):
        (engine,) = engines.started
        base_label = engine.spec.label
        if failure == "add_lora":
            engine.refuse_adapters.add(str((tmp_path / "v2-adapter").resolve()))
        worker.request_swap(bad, explicit=True)
        report = await swapped(worker, bad.label)
        beat = json.loads(await aredis.get(heartbeat_key(lora_config.worker_id)))
        async with LogListener(generation.pk) as listener:
            await enqueue(aredis, lora_config, generation)
            done = await listener.until("done")

    assert not report["ok"] and reason in report["error"]
    assert report["swap_path"] == "lora-hot-load"
    assert reason in beat["last_swap_error"] and beat["model_version"] == base_label
    assert beat["serving"]["adapter"] is None
    assert worker.engine is engine and done["model_version"] == base_label
    assert adapter_of(engine, generation.pk) is None
    assert not engine.adapters  # nothing left loaded (a failed check removes its adapter)
    if failure == "corrupt":
        assert not engine.added  # refused before vLLM saw it


@pytest.mark.parametrize("case", ["lora off", "another base"])
async def test_without_a_hot_load_the_merged_checkpoint_goes_blue_green(
    lora_config, aredis, student, problem, tmp_path, base_dir, case
):
    config = lora_config
    if case == "lora off":
        config = lora_config.with_overrides(
            engine=dataclasses.replace(lora_config.engine, enable_lora=False)
        )
        target = version(tmp_path, "v2", base_dir)
        reason = "INFERENCE_LORA=0"
    else:
        other = tmp_path / "v1-merged"
        other.mkdir()
        target = version(tmp_path, "v2", str(other))
        reason = "is not the running engine's"
    engines = Engines()
    worker = lora_worker(config, engines)
    generation = await sync_to_async(new_generation)(student, problem)
    async with serving(worker):
        worker.request_swap(target, explicit=True)
        report = await swapped(worker, "v2")
        async with LogListener(generation.pk) as listener:
            await enqueue(aredis, config, generation)
            done = await listener.until("done")
        await wait_until(lambda: engines.started[0].closed, what="the old engine retired")

    assert report["ok"] and report["swap_path"] == "blue-green" and reason in report["reason"]
    assert [e.spec.path for e in engines.started] == [base_dir, target.path]
    assert done["model_version"] == "v2"
    assert adapter_of(engines.started[1], generation.pk) is None
    assert not engines.started[0].added


async def test_blue_green_away_from_an_adapter_retires_the_engine_after_its_answers(
    lora_config, aredis, student, problem, tmp_path, base_dir
):
    engines = Engines(step_delay_s=0.01)
    engines.completions[base_dir] = SLOW
    worker = lora_worker(lora_config, engines)
    v2 = version(tmp_path, "v2", base_dir)
    full = ModelSpec(None, "v3-full", str(tmp_path / "v3-full"))
    generation = await sync_to_async(new_generation)(student, problem)
    async with serving(worker):
        worker.request_swap(v2, explicit=True)
        await swapped(worker, "v2")
        async with LogListener(generation.pk) as listener:
            await enqueue(aredis, lora_config, generation)
            await listener.until("delta")
            worker.request_swap(full, explicit=True)
            report = await swapped(worker, "v3-full")
            assert not engines.started[0].closed
            done = await listener.until("done")
        await wait_until(lambda: engines.started[0].closed, what="the base engine retired")
    assert report["swap_path"] == "blue-green" and worker.engine is engines.started[1]
    assert done["model_version"] == "v2" and done["status"] == "done"


@pytest.mark.parametrize("adapter_ok", [True, False])
async def test_a_worker_starting_on_a_lora_champion_starts_its_base_and_hot_loads_it(
    lora_config, aredis, student, problem, tmp_path, base_dir, adapter_ok
):
    v2 = version(tmp_path, "v2", base_dir)
    if not adapter_ok:
        corrupt_adapter_weights(v2.path)
    champion = await ModelVersion.objects.acreate(
        label="v2", path=v2.path, status=VersionStatus.CHAMPION
    )
    engines = Engines()
    worker = lora_worker(lora_config, engines)
    generation = await sync_to_async(new_generation)(student, problem)
    async with serving(worker):
        started_on = worker.engine.spec
        async with LogListener(generation.pk) as listener:
            await enqueue(aredis, lora_config, generation)
            done = await listener.until("done")
        if adapter_ok:
            # The next version trained on the same base hot-loads as well.
            worker.request_swap(version(tmp_path, "v3", base_dir), explicit=True)
            report = await swapped(worker, "v3")

    assert done["model_version"] == "v2" and started_on.model_version_id == champion.pk
    if adapter_ok:
        (engine,) = engines.started
        assert engine.spec.path == os.path.realpath(base_dir)
        assert adapter_of(engine, generation.pk).spec.label == "v2"
        assert report["ok"] and report["swap_path"] == "lora-hot-load"
    else:
        # The merged checkpoint serves the same version, the refusal is reported.
        assert [e.spec.path for e in engines.started] == [os.path.realpath(base_dir), v2.path]
        assert engines.started[0].closed and adapter_of(engines.started[1], generation.pk) is None
        assert "adapter refused at start" in worker.swap.last_swap_error
