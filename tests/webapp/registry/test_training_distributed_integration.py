"""A 2-rank training job through a real Celery worker (TRAINING_NPROC_PER_NODE=2 in the worker's
environment: the task starts a torchrun process group, gloo on CPU). A cancel stops the group
within a step; a rank killed mid-job fails the job with the rank named, and resume (a new Celery
task) finishes it from the last checkpoint. The job page, open in Chromium from before the ranks
start, shows both ranks alive as they beat and exited once the group ends, without a reload (set
UPDATE_DOCS_SCREENSHOTS=1 to refresh docs/images/training-job-ranks.png from this run)."""

import json
import os
import signal
import socket
from pathlib import Path

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.webapp.registry.test_training_integration import (  # noqa: F401 (fixtures)
    _start_worker,
    job_row,
    launch,
    only_our_workers,
    site,
    wait_for,
)
from webapp.registry.models import JobStatus
from webapp.registry.training_jobs.services import training_job_cancel, training_job_resume

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]


def test_a_two_rank_job_through_celery_cancels_fails_on_a_dead_rank_and_resumes(
    site,  # noqa: F811 (an imported fixture)
    child_env,
    only_our_workers,  # noqa: F811 (an imported fixture)
    tmp_path,
    live_site,
    page,
    login,
):
    admin, base = site
    env = {**child_env, "TRAINING_NPROC_PER_NODE": "2", "TRAINING_STALE_SECONDS": "120"}
    worker = _start_worker(env, "ranks", tmp_path)
    try:
        cancelled = launch(admin, base, steps=40, checkpoint_every=1)
        login(page, admin.username, "x")
        page.goto(live_site.url + reverse("registry:job", args=[cancelled.pk]))
        rows = page.locator("#rank-rows tr")
        expect(rows).to_have_count(2, timeout=240_000)  # arrived over the socket, no reload
        expect(page.locator("#rank-rows .state-alive")).to_have_count(2)
        expect(rows.first).to_contain_text(socket.gethostname())
        if os.environ.get("UPDATE_DOCS_SCREENSHOTS"):
            page.screenshot(path=str(ROOT / "docs" / "images" / "training-job-ranks.png"))
        wait_for(
            lambda: job_row(cancelled.pk).current_step >= 1,
            timeout=240,
            what="the first step of the 2-rank job",
            logs=[worker],
        )
        training_job_cancel(job=cancelled, actor=admin)
        wait_for(
            lambda: job_row(cancelled.pk).status == JobStatus.CANCELLED,
            timeout=180,
            what="the 2-rank job to stop",
            logs=[worker],
        )
        row = job_row(cancelled.pk)
        assert row.current_step < 40 and row.last_checkpoint_step == row.current_step
        assert "starting 2 ranks" in row.log_tail
        # The supervisor reported both ranks through the job's recorder, the last time exited;
        # the page, still open, says so too.
        assert [(b["rank"], b["exited"]) for b in row.rank_beats] == [(0, True), (1, True)]
        expect(page.locator("#rank-rows .state-exited")).to_have_count(2, timeout=30_000)

        # Eight steps and the kill within 20 ms of the first checkpoint: on a fast machine a
        # 4-step job reached its end between two 0.3 s polls, and no rank was left to kill mid-way.
        job = launch(admin, base, steps=8, checkpoint_every=1)
        control = Path(job_row(job.pk).output_dir) / "control"
        wait_for(
            lambda: (
                (job_row(job.pk).last_checkpoint_step or 0) >= 1
                and (control / "heartbeat-1.json").is_file()
            ),
            timeout=240,
            what="a first checkpoint",
            logs=[worker],
            every=0.02,
        )
        os.kill(json.loads((control / "heartbeat-1.json").read_text())["pid"], signal.SIGKILL)
        wait_for(
            lambda: job_row(job.pk).status == JobStatus.FAILED,
            timeout=180,
            what="the job to fail",
            logs=[worker],
        )
        failed = job_row(job.pk)
        assert "RankFailure" in failed.error and "rank" in failed.error.split("RankFailure", 1)[1]
        resumed_from = failed.last_checkpoint_step
        assert 1 <= resumed_from < 8

        training_job_resume(job=failed, actor=admin)
        wait_for(
            lambda: job_row(job.pk).status == JobStatus.SUCCEEDED,
            timeout=300,
            what="the resumed job to finish",
            logs=[worker],
        )
        done = job_row(job.pk)
        assert done.current_step == 8 and done.last_checkpoint_step == 8 and done.resume_count == 1
    finally:
        worker.stop()
