"""A training job run as a 2-rank torchrun process group by the service the Celery task calls
(settings.TRAINING_NPROC_PER_NODE = 2, gloo on CPU): a cancel stops the group at a checkpoint; a
rank killed mid-job fails it with the rank named, and resume continues from the last checkpoint.
"""

import json
import os
import signal
from pathlib import Path

import pytest
from django.urls import reverse

from tests.webapp.registry.conftest import TINY_JOB_HYPERPARAMETERS
from tests.webapp.registry.factories import make_pool_problems, make_version
from webapp.accounts.services import user_create
from webapp.registry.models import JobStatus, TrainingJob, VersionStatus
from webapp.registry.training_jobs.ranks import rank_rows
from webapp.registry.training_jobs.recorder import JobRecorder
from webapp.registry.training_jobs.services import (
    training_job_create,
    training_job_resume,
    training_job_run,
)

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture
def setup(tiny_checkpoint, tmp_path, settings):
    settings.CHECKPOINT_DIR = tmp_path / "store"
    settings.TRAINING_NPROC_PER_NODE = 2
    settings.TRAINING_STALE_SECONDS = 120
    admin = user_create(username="dist-admin", password="x", role="admin", validate=False)
    base = make_version("tiny-base", status=VersionStatus.CHAMPION)
    base.path = str(tiny_checkpoint)
    base.save()
    make_pool_problems(admin, 16)
    return admin, base


def create_job(admin, base, steps: int) -> TrainingJob:
    return training_job_create(
        created_by=admin,
        base_model=base,
        stage="c3po-math",
        algorithm="c3po",
        hyperparameters={**TINY_JOB_HYPERPARAMETERS, "steps": steps},
        problem_filter={},
    )


def test_two_ranks_cancel_within_a_step(setup, monkeypatch, client):
    admin, base = setup
    job = create_job(admin, base, steps=50)
    original = JobRecorder.metrics

    def cancel_after_first_step(self, step, metrics):
        original(self, step, metrics)
        if step == 1:
            TrainingJob.objects.filter(pk=self.job_id).update(
                cancel_requested=True, status=JobStatus.CANCELLING
            )

    monkeypatch.setattr(JobRecorder, "metrics", cancel_after_first_step)
    assert training_job_run(job_id=job.pk) == JobStatus.CANCELLED
    job.refresh_from_db()
    assert job.last_checkpoint_step == job.current_step >= 1 and job.result_model is not None
    control = Path(job.output_dir) / "control"
    assert {p.name for p in control.glob("heartbeat-*.json")} == {
        "heartbeat-0.json",
        "heartbeat-1.json",
    }
    assert "starting 2 ranks" in job.log_tail
    # Both ranks were recorded, with the pids of their heartbeat files, and read exited now.
    pids = {json.loads(p.read_text())["pid"] for p in control.glob("heartbeat-*.json")}
    assert [(b["rank"], b["exited"]) for b in job.rank_beats] == [(0, True), (1, True)]
    assert {b["pid"] for b in job.rank_beats} == pids
    assert [r["state"] for r in rank_rows(job)] == ["exited", "exited"]
    client.force_login(admin)
    page = client.get(reverse("registry:job", args=[job.pk])).content.decode()
    assert page.count('<tr data-rank="') == 2 and "state-exited" in page


def test_a_dead_rank_fails_the_job_and_resume_continues_from_the_checkpoint(setup, monkeypatch):
    admin, base = setup
    job = create_job(admin, base, steps=3)
    original = JobRecorder.checkpoint_written

    def kill_rank_one_after_first_checkpoint(self, step, path, info):
        original(self, step, path, info)
        if step == 1:
            beat = Path(TrainingJob.objects.get(pk=self.job_id).output_dir) / "control"
            os.kill(json.loads((beat / "heartbeat-1.json").read_text())["pid"], signal.SIGKILL)

    monkeypatch.setattr(JobRecorder, "checkpoint_written", kill_rank_one_after_first_checkpoint)
    assert training_job_run(job_id=job.pk) == JobStatus.FAILED
    job.refresh_from_db()
    assert "RankFailure" in job.error and "rank" in job.error.split("RankFailure", 1)[1]
    assert job.last_checkpoint_step >= 1

    monkeypatch.setattr(JobRecorder, "checkpoint_written", original)
    training_job_resume(job=job, actor=admin)
    assert training_job_run(job_id=job.pk) == JobStatus.SUCCEEDED
    job.refresh_from_db()
    assert job.current_step == 3 and job.last_checkpoint_step == 3
    assert sorted(set(job.metrics.values_list("step", flat=True))) == [1, 2, 3]
