"""A process group's rank heartbeats on the job page: the recorder keeps what the supervisor
reports (replacing the previous report, fenced by the run token, one live `ranks` event after the
commit), and the rows say alive, stale or exited, exited for every rank once the job is over."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.webapp.registry.factories import make_version
from training.observer import RankBeat
from webapp.accounts.services import user_create
from webapp.registry.models import JobStatus, TrainingJob, VersionStatus
from webapp.registry.training_jobs import recorder as recorder_module
from webapp.registry.training_jobs.ranks import (
    RANK_STALE_SECONDS,
    beats_as_json,
    rank_rows,
    rank_stale_after_seconds,
)
from webapp.registry.training_jobs.recorder import JobRecorder, RunSuperseded

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(tmp_path):
    base = make_version("ranks-base", status=VersionStatus.CHAMPION)
    return TrainingJob.objects.create(
        base_model=base,
        stage="c3po-math",
        total_steps=3,
        status=JobStatus.RUNNING,
        run_token="run-a",
        output_dir=str(tmp_path / "job"),
    )


def beat(rank, age, *, exited=False):
    return RankBeat(rank=rank, host=f"node-{rank}", pid=1000 + rank, age_seconds=age, exited=exited)


def test_rows_say_alive_stale_or_exited_by_rank(job, settings):
    settings.TRAINING_STALE_SECONDS = 60
    now = timezone.now()
    job.rank_beats = beats_as_json(
        [beat(2, 1.0, exited=True), beat(1, 40.0), beat(0, 2.0)], now=now
    )
    rows = rank_rows(job, now=now + timedelta(seconds=1))
    assert [(r["rank"], r["host"], r["pid"], r["state"]) for r in rows] == [
        (0, "node-0", 1000, "alive"),
        (1, "node-1", 1001, "stale"),
        (2, "node-2", 1002, "exited"),
    ]
    assert [r["age_seconds"] for r in rows] == [3.0, 41.0, 2.0]
    # A running rank turns stale on the page's threshold, never later than the supervisor's.
    settings.TRAINING_STALE_SECONDS = 5
    assert rank_stale_after_seconds() == 5
    assert rank_rows(job, now=now + timedelta(seconds=4))[0]["state"] == "stale"
    settings.TRAINING_STALE_SECONDS = 600
    assert rank_stale_after_seconds() == RANK_STALE_SECONDS


def test_once_the_job_is_over_every_rank_reads_exited_not_stale(job):
    # The run's worker died before the supervisor's last report: the beats are old, not exited.
    job.rank_beats = beats_as_json([beat(0, 500.0), beat(1, 500.0)])
    assert {r["state"] for r in rank_rows(job)} == {"stale"}
    for status in (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.SUCCEEDED):
        job.status = status
        assert {r["state"] for r in rank_rows(job)} == {"exited"}
    job.rank_beats = []
    assert rank_rows(job) == []


def test_the_recorder_keeps_the_last_report_and_sends_it_live(job, monkeypatch):
    sent = []
    monkeypatch.setattr(recorder_module, "send_after_commit", lambda job_id, e: sent.append(e))
    recorder = JobRecorder(job)
    recorder.rank_heartbeats([beat(1, 0.5), beat(0, 1.5)])
    job.refresh_from_db()
    assert [b["rank"] for b in job.rank_beats] == [0, 1]
    assert [e["type"] for e in sent] == ["ranks"]
    assert [(r["rank"], r["state"]) for r in sent[0]["ranks"]] == [(0, "alive"), (1, "alive")]
    assert sent[0]["stale_after_seconds"] == rank_stale_after_seconds()

    # A resume at a smaller world size: the new report replaces the old ranks whole.
    recorder.rank_heartbeats([beat(0, 0.1, exited=True)])
    job.refresh_from_db()
    assert [(b["rank"], b["exited"]) for b in job.rank_beats] == [(0, True)]
    assert [r["state"] for r in sent[-1]["ranks"]] == ["exited"]

    TrainingJob.objects.filter(pk=job.pk).update(run_token="run-b")
    with pytest.raises(RunSuperseded):
        recorder.rank_heartbeats([beat(0, 0.1)])
    job.refresh_from_db()
    assert [(b["rank"], b["exited"]) for b in job.rank_beats] == [(0, True)]


def test_the_job_page_shows_one_row_per_rank_and_hides_the_table_without_ranks(client, job):
    admin = user_create(username="ranks-admin", password="x", role="admin", validate=False)
    client.force_login(admin)
    url = reverse("registry:job", args=[job.pk])
    page = client.get(url).content.decode()
    assert 'id="ranks"' in page and 'aria-labelledby="ranks-title" hidden' in page
    assert "data-rank=" not in page

    JobRecorder(job).rank_heartbeats([beat(0, 1.0), beat(1, 2.0)])
    page = client.get(url).content.decode()
    assert 'aria-labelledby="ranks-title" hidden' not in page
    assert page.count('<tr data-rank="') == 2
    assert "node-0" in page and "1001" in page and "state-alive" in page
