"""A big upload's answers are checked by a real Celery worker process: the preview is staged at
once, the worker reads the symbolic answers, and the import opens when it is done."""

import time

import pytest

from webapp.accounts.services import user_create
from webapp.problems import services
from webapp.problems.models import OnError, ProblemUpload, UploadState

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _refreshed_until(staged, done, timeout_s: float = 60.0) -> None:
    """Reload the staged upload until `done()` holds or the time is up (the caller's assertion
    then says what the worker left)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        staged.refresh_from_db()
        if done():
            return
        time.sleep(0.3)


def test_a_celery_worker_checks_the_answers_of_a_big_upload(
    transactional_db, celery_worker_process, monkeypatch
):
    monkeypatch.setattr(services, "INLINE_ANSWER_CHECKS", 2)
    teacher = user_create(username="t-big", password="x", role="teacher", validate=False)
    rows = [f"Expand $(x+{n})^2$.,x^2+{2 * n}x+{n * n}" for n in range(1, 9)]
    data = ("statement,answer\n" + "\n".join(rows) + "\nIntegrate x.,\\frac{x^2}{2\n").encode()

    staged = services.problem_upload_preview(teacher=teacher, data=data, filename="algebra.csv")
    assert staged.pending_checks == 9

    _refreshed_until(staged, lambda: not staged.pending_checks)
    assert staged.pending_checks == 0, celery_worker_process.log()[-3000:]
    assert staged.flagged_count == 1
    result = services.problem_upload_import(upload=staged, teacher=teacher, on_error=OnError.SKIP)
    assert (result.imported, result.flagged) == (9, 1)
    assert not ProblemUpload.objects.exists()


def test_a_celery_worker_reads_a_big_upload_and_the_preview_appears(
    transactional_db, celery_worker_process
):
    teacher = user_create(username="t-huge", password="x", role="teacher", validate=False)
    rows = [f"What is {n} + {n}? (case {n}),{2 * n}" for n in range(1_200)]
    data = ("statement,answer\n" + "\n".join(rows) + "\n,7\n").encode()

    staged = services.problem_upload_receive(teacher=teacher, data=data, filename="huge.csv")
    assert staged.state == UploadState.READING  # the request only stored it

    _refreshed_until(staged, lambda: staged.state != UploadState.READING)
    assert staged.state == UploadState.READY, celery_worker_process.log()[-3000:]
    assert (staged.ready_count, staged.error_count) == (1_200, 1)
    assert staged.raw_data is None and staged.read_done == staged.read_total == 1_201
    result = services.problem_upload_import(upload=staged, teacher=teacher, on_error=OnError.SKIP)
    assert result.imported == 1_200


def test_a_celery_worker_imports_a_big_preview_in_one_transaction(
    transactional_db, celery_worker_process
):
    teacher = user_create(username="t-import", password="x", role="teacher", validate=False)
    rows = [f"What is {n} * 3? (case {n}),{3 * n}" for n in range(1_200)]
    data = ("statement,answer\n" + "\n".join(rows) + "\n").encode()
    staged = services.problem_upload_preview(teacher=teacher, data=data, filename="big.csv")

    started = services.problem_upload_import_start(
        upload=staged, teacher=teacher, on_error=OnError.SKIP, title="Times three"
    )
    assert started is None  # more than PROBLEM_IMPORT_INLINE_MAX_ITEMS: the task imports it

    _refreshed_until(staged, lambda: staged.state != UploadState.IMPORTING)
    assert staged.state == UploadState.IMPORTED, celery_worker_process.log()[-3000:]
    result = services.problem_upload_import_result(upload=staged, teacher=teacher)
    assert result is not None and result.imported == 1_200
    assert result.problem_set.title == "Times three"
    assert result.problem_set.problems.count() == 1_200
    assert not ProblemUpload.objects.exists()
