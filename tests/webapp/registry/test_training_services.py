"""Training-job services without a worker: validation, the queue, cancel, liveness and resume,
and the recorder's writes (fenced by the run token)."""

import os
import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.webapp.registry.factories import dead_pid, make_pool_problems, make_version
from webapp.accounts.services import user_create
from webapp.core.errors import ServiceError
from webapp.registry.models import JobStatus, TrainingJob, TrainingMetric, VersionStatus
from webapp.registry.training_jobs.fields import hyperparameter_fields
from webapp.registry.training_jobs.heartbeat import runner_is_alive
from webapp.registry.training_jobs.pool import pool_split
from webapp.registry.training_jobs.recorder import JobRecorder, RunSuperseded
from webapp.registry.training_jobs.services import (
    JobHeldElsewhere,
    _claim,
    training_job_cancel,
    training_job_create,
    training_job_recover_stalled,
    training_job_resume,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin():
    return user_create(username="job-admin", password="x", role="admin", validate=False)


@pytest.fixture
def base(tmp_path):
    (tmp_path / "base").mkdir()
    version = make_version("base", status=VersionStatus.CHAMPION)
    version.path = str(tmp_path / "base")
    version.save()
    return version


@pytest.fixture
def pool(admin):
    return make_pool_problems(admin, 30)


def create(admin, base, **overrides):
    arguments = dict(
        created_by=admin,
        base_model=base,
        stage="c3po-math",
        algorithm="c3po",
        hyperparameters={"steps": 3, "checkpoint_every": 1},
        problem_filter={},
    )
    arguments.update(overrides)
    return training_job_create(**arguments)


def test_create_fills_in_the_documented_defaults_and_enqueues_on_commit(
    admin, base, pool, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = create(admin, base)
    assert len(callbacks) == 1  # the Celery task, sent only once the row is committed
    assert job.status == JobStatus.QUEUED and job.total_steps == 3 and job.celery_task_id
    defaults = {f.name: f.default for f in hyperparameter_fields()}
    assert job.hyperparameters == {**defaults, "steps": 3, "checkpoint_every": 1}
    assert job.problem_filter == {"domains": ["math"], "problem_set_ids": []}
    assert job.output_dir.endswith(f"jobs/job-{job.pk}-{job.celery_task_id[:8]}")


@pytest.mark.parametrize(
    "hyperparameters,message",
    [
        ({"lr": "fast"}, "must be a number"),
        ({"group_size": 1}, "at least 2"),
        ({"eps_clip": 1.5}, "at most"),
        ({"learning_rate": 1e-4}, "Unknown hyper-parameters"),
        ({"steps": 2.5}, "whole number"),
    ],
)
def test_invalid_hyperparameters_are_refused(admin, base, pool, hyperparameters, message):
    with pytest.raises(ServiceError) as refused:
        create(admin, base, hyperparameters=hyperparameters)
    assert message in refused.value.message
    assert not TrainingJob.objects.exists()


def test_an_empty_pool_or_a_missing_checkpoint_is_refused(admin, base, pool, tmp_path):
    with pytest.raises(ServiceError) as empty:
        create(admin, base, problem_filter={"domains": ["science"]})
    assert empty.value.code == "empty_pool"
    missing = make_version("gone")
    with pytest.raises(ServiceError) as gone:
        create(admin, missing)
    assert gone.value.code == "missing_checkpoint"


def test_only_admins_launch_jobs(base, pool):
    teacher = user_create(username="t", password="x", role="teacher", validate=False)
    with pytest.raises(ServiceError) as refused:
        create(teacher, base)
    assert refused.value.status == 403


def test_the_pool_split_keeps_held_out_problems_out_of_training(admin, pool):
    split = pool_split(problem_filter={"domains": ["math"]})
    assert len(split.train) + len(split.held_out) == 30
    train = {r["statement"] for r in split.train}
    assert not train & {r["statement"] for r in split.held_out}
    assert split.sources == {"math drills (job-admin)": 30}
    record = split.train[0]
    assert record["kind"] == "number" and record["id"].startswith("site-")


def test_the_pool_and_the_trainer_hold_out_the_same_problems(admin, pool):
    """One held-out rule: the side the site puts a record on is the side the trainer's own
    curation would (training.c3po.data.split_held_out on the same records)."""
    from training.c3po.data import as_rl_problem, split_held_out

    split = pool_split(problem_filter={"domains": ["math"]})
    records = split.train + split.held_out
    assert split.held_out, "the fixture pool should have a held-out side"
    train, held_out = split_held_out([as_rl_problem(r) for r in records])
    assert {p.problem_id for p in held_out} == {r["id"] for r in split.held_out}
    assert {p.problem_id for p in train} == {r["id"] for r in split.train}


def test_cancel_a_queued_job_ends_it_and_a_running_one_asks_it_to_stop(admin, base, pool):
    queued = create(admin, base)
    assert training_job_cancel(job=queued, actor=admin).status == JobStatus.CANCELLED
    with pytest.raises(ServiceError):
        training_job_cancel(job=queued, actor=admin)

    running = create(admin, base)
    TrainingJob.objects.filter(pk=running.pk).update(status=JobStatus.RUNNING)
    running = training_job_cancel(job=running, actor=admin)
    assert running.status == JobStatus.CANCELLING and running.cancel_requested


def test_the_job_pages_log_gets_the_cancel_and_closing_lines_live(admin, base, pool, monkeypatch):
    from webapp.registry.training_jobs import services as training_services

    sent = []
    monkeypatch.setattr(training_services, "send_after_commit", lambda job_id, e: sent.append(e))
    job = create(admin, base)
    TrainingJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, run_token="run-1")
    training_job_cancel(job=job, actor=admin)
    assert {"type": "log", "lines": ["cancel requested by job-admin"]} in sent
    sent.clear()
    training_services._finish(job.pk, "run-1", status=JobStatus.CANCELLED, line="cancelled")
    # The closing line first, then the status that redraws the page's buttons.
    assert [e["type"] for e in sent] == ["log", "status"]
    assert sent[0]["lines"] == ["cancelled"]


def _mark_running(job, *, pid, host=None, age=0):
    TrainingJob.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING,
        run_token="old-run",
        worker_hostname=host or socket.gethostname(),
        worker_pid=pid,
        heartbeat_at=timezone.now() - timedelta(seconds=age),
    )
    job.refresh_from_db()
    return job


def test_liveness_uses_the_pid_on_this_host_and_the_heartbeat_elsewhere(admin, base, pool):
    job = create(admin, base)
    assert runner_is_alive(_mark_running(job, pid=os.getppid()))
    assert not runner_is_alive(_mark_running(job, pid=dead_pid()))
    assert runner_is_alive(_mark_running(job, pid=dead_pid(), host="gpu-node-7", age=5))
    assert not runner_is_alive(_mark_running(job, pid=os.getppid(), age=3600))


def test_a_job_held_by_a_live_run_is_not_taken_over(admin, base, pool):
    job = _mark_running(create(admin, base), pid=os.getppid())
    with pytest.raises(JobHeldElsewhere):
        _claim(job.pk, "new-run")
    with pytest.raises(ServiceError):
        training_job_resume(job=job, actor=admin)


def test_a_dead_run_is_taken_over_from_its_last_checkpoint(admin, base, pool, monkeypatch):
    from webapp.registry.training_jobs import recorder as training_recorder

    job = _mark_running(create(admin, base), pid=dead_pid())
    TrainingJob.objects.filter(pk=job.pk).update(last_checkpoint_step=2, current_step=3)
    for step in (1, 2, 3):
        TrainingMetric.objects.create(job=job, step=step, metrics={"reward_mean": 0.1})
    claimed = _claim(job.pk, "new-run")
    assert claimed.run_token == "new-run" and claimed.resume_count == 1
    assert claimed.worker_pid == os.getpid() and claimed.current_step == 2
    assert "resuming from the last checkpoint (step 2 recorded)" in claimed.log_tail

    # The claim keeps every row: the dead run may have checkpointed step 3 before it died.
    def steps():
        return list(TrainingMetric.objects.filter(job=job).values_list("step", flat=True))

    assert steps() == [1, 2, 3]
    # The trainer says it goes on after step 2: step 3 will be trained again, its row goes,
    # and an open job page drops its point.
    sent = []
    monkeypatch.setattr(training_recorder, "send_after_commit", lambda job_id, e: sent.append(e))
    JobRecorder(claimed).resumed(2)
    assert steps() == [1, 2]
    assert TrainingJob.objects.get(pk=job.pk).current_step == 2
    assert sent[0] == {"type": "resumed", "step": 2} and sent[1]["current_step"] == 2


def test_a_worker_start_requeues_stalled_jobs_only(
    admin, base, pool, django_capture_on_commit_callbacks
):
    dead = _mark_running(create(admin, base), pid=dead_pid())
    alive = _mark_running(create(admin, base), pid=os.getppid())
    old_task_id = dead.celery_task_id
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert training_job_recover_stalled() == [dead.pk]
    assert callbacks  # the new task is sent on commit
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert dead.status == JobStatus.QUEUED and dead.run_token == ""
    assert dead.celery_task_id != old_task_id
    assert alive.status == JobStatus.RUNNING


def test_the_recorder_stores_metrics_and_is_fenced_by_the_run_token(admin, base, pool):
    job = create(admin, base)
    job = _claim(job.pk, "run-a")
    recorder = JobRecorder(job)
    recorder.metrics(1, {"reward_mean": 0.5, "kl": float("nan"), "tokens_trained": 100})
    row = TrainingMetric.objects.get(job=job, step=1)
    assert row.metrics == {"reward_mean": 0.5, "tokens_trained": 100}  # NaN is not JSON
    recorder.samples(1, [{"statement": "Compute 2 + 1.", "completion": "<b>3</b>", "reward": 1.0}])
    assert job.samples.get().prompt == "Compute 2 + 1."
    recorder.log("step 1 done")
    assert not recorder.should_stop()

    TrainingJob.objects.filter(pk=job.pk).update(cancel_requested=True)
    assert recorder.should_stop()
    TrainingJob.objects.filter(pk=job.pk).update(run_token="run-b", cancel_requested=False)
    assert recorder.should_stop()
    with pytest.raises(RunSuperseded):
        recorder.metrics(2, {"reward_mean": 0.7})


def test_an_evaluation_whose_worker_died_is_queued_again(
    admin, base, django_capture_on_commit_callbacks
):
    from webapp.registry.models import Evaluation
    from webapp.registry.services import evaluation_recover_stalled, evaluation_request

    evaluation = evaluation_request(model_version=base, n_per_level=1, max_new_tokens=8)
    Evaluation.objects.filter(pk=evaluation.pk).update(
        status="running", worker_hostname=socket.gethostname(), worker_pid=os.getppid()
    )
    # Its worker is alive: asking again returns it, nothing is queued.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert evaluation_request(model_version=base, n_per_level=1, max_new_tokens=8) == evaluation
        assert evaluation_recover_stalled() == []
    assert not callbacks
    Evaluation.objects.filter(pk=evaluation.pk).update(worker_pid=dead_pid())
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert evaluation_recover_stalled() == [evaluation.pk]
    assert len(callbacks) == 1
    evaluation.refresh_from_db()
    assert evaluation.status == "pending"


def test_a_superseded_run_cannot_end_the_job(admin, base, pool):
    from webapp.registry.training_jobs.services import _finish

    job = _claim(create(admin, base).pk, "run-a")
    TrainingJob.objects.filter(pk=job.pk).update(run_token="run-b")
    assert _finish(job.pk, "run-a", status=JobStatus.SUCCEEDED) == "superseded"
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.finished_at is None


def test_publishing_removes_what_a_killed_publisher_left_of_the_same_checkpoint(tmp_path):
    from webapp.registry.training_jobs.bridge import publish_checkpoint

    source = tmp_path / "run" / "step-000004"
    source.mkdir(parents=True)
    (source / "model.safetensors").write_bytes(b"weights")
    (source / "training_state.pt").write_bytes(b"optimiser")
    versions = tmp_path / "versions"
    versions.mkdir()
    host = socket.gethostname()
    dead = versions / f".step-000004.tmp-{host}-{dead_pid()}"  # killed while copying
    elsewhere = versions / ".step-000004.tmp-gpu-node-7-4242"  # another host's: may be copying
    alive = versions / f".step-000004.tmp-{host}-{os.getppid()}"  # a live process's
    other_step = versions / f".step-000002.tmp-{host}-{dead_pid()}"  # not this checkpoint's
    ours = versions / f".step-000004.tmp-{host}-{os.getpid()}"  # an earlier try that failed
    for leftover in (dead, elsewhere, alive, other_step, ours):
        leftover.mkdir()
        (leftover / "model.safetensors").write_bytes(b"partial")

    target = publish_checkpoint(source=source, target=versions / "step-000004")
    assert (target / "model.safetensors").read_bytes() == b"weights"
    assert not (target / "training_state.pt").exists()
    assert not dead.exists()
    assert elsewhere.exists() and alive.exists() and other_step.exists()
