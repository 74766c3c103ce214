"""A tiny training job run in this process by the service the Celery task calls: metrics per
step, samples, log, checkpoints registered as candidates (published outside the run's directory),
then cancel within one step. The same service under a real Celery worker is in
test_training_integration.py."""

from pathlib import Path

import pytest

from tests.webapp.registry.conftest import TINY_JOB_HYPERPARAMETERS
from tests.webapp.registry.factories import dead_pid, make_pool_problems, make_version
from webapp.accounts.services import user_create
from webapp.registry.models import (
    Evaluation,
    JobStatus,
    ModelVersion,
    TrainingJob,
    TrainingMetric,
    VersionStatus,
)
from webapp.registry.training_jobs.recorder import JobRecorder
from webapp.registry.training_jobs.services import (
    training_job_create,
    training_job_run,
)

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture
def setup(tiny_checkpoint, tmp_path, settings):
    settings.CHECKPOINT_DIR = tmp_path / "store"
    admin = user_create(username="run-admin", password="x", role="admin", validate=False)
    base = make_version("tiny-base", status=VersionStatus.CHAMPION)
    base.path = str(tiny_checkpoint)
    base.save()
    make_pool_problems(admin, 16)
    return admin, base


def _tiny_job(admin, base, **hyperparameters) -> TrainingJob:
    """A C3PO math job on the tiny checkpoint (TINY_JOB_HYPERPARAMETERS, with these changes)."""
    return training_job_create(
        created_by=admin,
        base_model=base,
        stage="c3po-math",
        algorithm="c3po",
        hyperparameters={**TINY_JOB_HYPERPARAMETERS, **hyperparameters},
        problem_filter={},
    )


def test_a_job_runs_records_registers_and_queues_its_evaluation(
    setup, django_capture_on_commit_callbacks
):
    admin, base = setup
    job = _tiny_job(admin, base)
    with django_capture_on_commit_callbacks(execute=False):
        assert training_job_run(job_id=job.pk) == JobStatus.SUCCEEDED
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.current_step == 2
    assert job.last_checkpoint_step == 2 and job.finished_at is not None
    steps = list(TrainingMetric.objects.filter(job=job).values_list("step", flat=True))
    assert steps == [1, 2]
    metrics = TrainingMetric.objects.get(job=job, step=2).metrics
    # C3PO trains exactly Φ tokens per update (or the documented shortfall).
    assert metrics["tokens_trained"] + metrics["budget_shortfall"] == 20
    for key in ("reward_mean", "entropy", "grad_norm", "kl", "clip_fraction", "tokens_per_s"):
        assert key in metrics
    assert job.samples.count() >= 2
    assert "stage math" in job.log_tail and "job finished" in job.log_tail
    assert len(job.spec["problems"]) + len(job.spec["held_out_ids"]) == 16
    # The log states the held-out count the launch form showed, and never a contradicting "0".
    held_out = len(job.spec["held_out_ids"])
    assert f"{held_out} held out for evaluation (never trained on)" in job.log_tail
    assert " 0 held out" not in job.log_tail
    assert job.spec["job_spec"]["config"]["budget_tokens"] == 20

    versions = list(ModelVersion.objects.filter(training_job=job).order_by("created_at"))
    assert [v.manifest["step"] for v in versions] == [1, 2]
    assert job.result_model == versions[-1]
    assert all(v.status == VersionStatus.CANDIDATE and v.parent == base for v in versions)
    # The run prunes its own checkpoints; the registered ones live in the version store.
    for version in versions:
        assert version.path.startswith(f"{job.output_dir}/versions/")
        assert Path(version.path, "model.safetensors").is_file()
        assert not Path(version.path, "training_state.pt").exists()
    # Evaluations (the result, and the base model on the same held-out set) are queued.
    queued = Evaluation.objects.filter(status="pending")
    assert {e.model_version for e in queued} == {versions[-1], base}


def test_cancel_stops_within_one_step(setup, monkeypatch):
    admin, base = setup
    job = _tiny_job(admin, base, steps=50)
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
    assert job.status == JobStatus.CANCELLED and job.current_step == 1
    assert list(job.metrics.values_list("step", flat=True)) == [1]
    # The stop wrote a checkpoint of the last completed step, registered like the others.
    assert job.last_checkpoint_step == 1 and job.result_model is not None
    assert not Evaluation.objects.filter(model_version=job.result_model).exists()


def test_an_evaluation_scores_each_domain_on_the_held_out_set(setup):
    from webapp.registry.services import evaluation_request, evaluation_run

    _, base = setup
    evaluation = evaluation_request(model_version=base, n_per_level=2, max_new_tokens=16)
    assert evaluation.status == "pending" and evaluation.options["max_new_tokens"] == 16
    evaluation = evaluation_run(evaluation=evaluation)
    assert evaluation.status == "done", evaluation.error
    assert evaluation.problem_count == 16  # 2 domains x 4 levels x 2
    for domain in ("math", "science"):
        row = evaluation.results[domain]
        assert row["n"] == 8 and set(row["by_level"]) == {"1", "2", "3", "4"}
        assert 0.0 <= row["ci_low"] <= row["accuracy"] <= row["ci_high"] <= 1.0
    # A random model never closes its reasoning within 16 tokens: every answer is unfinished.
    assert evaluation.results["math"]["unfinished"] == 8
    assert evaluation.report["overall"]["n"] == 16
    # Asking again for the same protocol while one is pending returns it; a finished one is
    # reused only when asked for "if missing".
    again = evaluation_request(model_version=base, n_per_level=2, max_new_tokens=16)
    assert again.pk != evaluation.pk
    reused = evaluation_request(
        model_version=base, n_per_level=2, max_new_tokens=16, only_if_missing=True
    )
    assert reused.pk == again.pk


def test_a_missing_checkpoint_fails_the_evaluation_with_the_reason(setup):
    from webapp.registry.services import evaluation_request, evaluation_run

    gone = make_version("gone")
    evaluation = evaluation_run(evaluation=evaluation_request(model_version=gone, n_per_level=1))
    assert evaluation.status == "failed" and "not on this machine" in evaluation.error


class _Killed(BaseException):
    """A SIGKILL stand-in: nothing in the run catches it, nothing in the job records it."""


def test_a_run_killed_between_its_checkpoint_and_the_record_of_it_loses_nothing(setup, monkeypatch):
    """The trainer moves its `latest.json` before the job hears of the checkpoint; a run killed
    between the two leaves the disk a checkpoint ahead of the job. The next run resumes from
    the disk's, so the job must catch up to it: its version registered, and the metrics of the
    steps it covers kept (they will not be trained again)."""
    admin, base = setup
    job = _tiny_job(admin, base, steps=6, checkpoint_every=2)
    recorded = JobRecorder.checkpoint_written

    def killed_at_step_4(self, step, path, info):
        if step == 4:
            raise _Killed
        recorded(self, step, path, info)

    monkeypatch.setattr(JobRecorder, "checkpoint_written", killed_at_step_4)
    with pytest.raises(_Killed):
        training_job_run(job_id=job.pk)
    # What the kill leaves behind: a running job whose process is gone, one checkpoint behind.
    TrainingJob.objects.filter(pk=job.pk).update(worker_pid=dead_pid())
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.last_checkpoint_step == 2
    assert list(job.metrics.values_list("step", flat=True)) == [1, 2, 3, 4]
    before = {m.step: m.created_at for m in job.metrics.all()}
    samples_before = sorted(job.samples.values_list("step", "pk"))

    monkeypatch.setattr(JobRecorder, "checkpoint_written", recorded)
    assert training_job_run(job_id=job.pk) == JobStatus.SUCCEEDED
    job.refresh_from_db()
    assert "resumed at step 4" in job.log_tail
    assert job.last_checkpoint_step == 6 and job.resume_count == 1
    after = {m.step: m.created_at for m in job.metrics.all()}
    assert sorted(after) == [1, 2, 3, 4, 5, 6]
    # Steps 3 and 4 were in the checkpoint the run resumed from: trained once, kept.
    assert all(after[step] == before[step] for step in (1, 2, 3, 4))
    versions = ModelVersion.objects.filter(training_job=job)
    assert sorted(v.manifest["step"] for v in versions) == [2, 4, 6]
    assert job.result_model.manifest["step"] == 6
    # Their samples too: kept once, not stored again.
    assert sorted(job.samples.filter(step__lte=4).values_list("step", "pk")) == samples_before
