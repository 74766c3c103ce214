"""The admin dashboard in real Chromium against the running site and a real Celery worker.

An admin launches a tiny C3PO job through the form, watches its curves fill in live over the
job's WebSocket (Chart.js points appear without a reload), sees the samples and the log, then
promotes the evaluated checkpoint from the registry table. Other roles are refused, in the browser
and on the job socket. Set UPDATE_DOCS_SCREENSHOTS=1 to refresh docs/images/training-job.png and
docs/images/dashboard.png from this run.
"""

import threading
import time
from pathlib import Path

import psutil
import pytest
from django.conf import settings as django_settings
from playwright.sync_api import expect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.fixtures.browser import docs_screenshot
from tests.fixtures.process_hold import ProcessHold
from tests.webapp.registry.conftest import TINY_JOB_HYPERPARAMETERS, write_tiny_checkpoint
from tests.webapp.registry.factories import make_pool_problems
from webapp.registry.models import (
    EvaluationStatus,
    JobStatus,
    ModelVersion,
    TrainingJob,
    TrainingMetric,
    TrainingSample,
    VersionStatus,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_base_checkpoint(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("admin-e2e") / "tiny-base")


@pytest.fixture
def admin_site(demo_users, tiny_base_checkpoint, settings, tmp_path):
    settings.CHECKPOINT_DIR = tmp_path / "store"
    make_pool_problems(demo_users["teacher"], 16)
    ModelVersion.objects.create(
        label="tiny-base", path=str(tiny_base_checkpoint), status=VersionStatus.CHAMPION
    )
    return demo_users


def test_admin_launches_a_job_watches_it_live_and_promotes_the_result(
    admin_site, live_site, celery_worker_process, page, login
):
    login(page, "admin")
    assert page.url == f"{live_site.url}/dashboard/"
    registry = page.locator("#registry")
    expect(registry.get_by_text("tiny-base")).to_be_visible()
    expect(page.locator("#pool-count")).to_contain_text("pool problems to train on")

    form = page.locator("#launch")
    expect(form.get_by_label("Token budget Φ")).to_have_value("4096")  # the documented default
    for name, value in TINY_JOB_HYPERPARAMETERS.items():
        form.locator(f"[name=hp_{name}]").fill(str(value))
    # The Celery worker is held still until the job's page is connected: a tiny job can be over
    # before a quiet machine has loaded the page, and then the curves come from the snapshot
    # rather than live.
    worker = psutil.Process(celery_worker_process.process.pid)
    with ProcessHold([worker, *worker.children(recursive=True)]).held():
        form.get_by_role("button", name="Launch job").click()
        page.wait_for_url("**/dashboard/jobs/*/")
        job = TrainingJob.objects.get()
        expect(page.locator("#live-state")).to_have_text("live")

    # Curves fill in over the WebSocket while the page stays loaded.
    page.wait_for_function(
        "() => Chart.getChart('chart-reward').data.datasets[0].data.length >= 2"
        " && Chart.getChart('chart-tokens').data.datasets[0].data.length >= 2",
        timeout=240_000,
    )
    expect(page.locator("#job-status")).to_have_attribute(
        "data-status", "succeeded", timeout=120_000
    )
    expect(page.locator("#job-status")).to_have_text("Succeeded")
    expect(page.locator("#job-step")).to_have_text("2")
    expect(page.locator("#samples .sample").first).to_be_visible()
    expect(page.locator("#job-log")).to_contain_text("job finished")
    tokens = page.evaluate(
        "() => Chart.getChart('chart-tokens').data.datasets[0].data.map(p => p.y)"
    )
    assert tokens == [job.metrics.get(step=s).metrics["tokens_trained"] for s in (1, 2)]
    docs_screenshot(page, "training-job")

    # The job queued evaluations of its result and of the base model; then promote it.
    candidate = TrainingJob.objects.get(pk=job.pk).result_model
    deadline = time.monotonic() + 300
    while candidate.evaluations.filter(status=EvaluationStatus.DONE).count() == 0:
        assert time.monotonic() < deadline, celery_worker_process.log()[-4000:]
        time.sleep(1)
    page.goto(f"{live_site.url}/dashboard/")
    row = page.locator(f"tr[data-version='{candidate.label}']")
    expect(row).to_contain_text("math")
    page.once("dialog", lambda dialog: dialog.accept())  # Promote asks for confirmation
    row.get_by_role("button", name="Promote", exact=True).click()
    expect(page.locator("#registry .message.success")).to_contain_text(
        f"{candidate.label} is the champion"
    )
    expect(page.locator(f"tr[data-version='{candidate.label}']")).to_contain_text("Champion")
    candidate.refresh_from_db()
    assert candidate.status == VersionStatus.CHAMPION
    docs_screenshot(page, "dashboard")


def test_other_roles_are_refused_in_the_browser_and_on_the_job_socket(
    admin_site, live_site, page, login, client
):
    job = TrainingJob.objects.create(
        base_model=ModelVersion.objects.get(label="tiny-base"), stage="c3po-math"
    )
    login(page, "teacher")
    assert page.goto(f"{live_site.url}/dashboard/").status == 403
    assert page.goto(f"{live_site.url}/dashboard/jobs/{job.pk}/").status == 403

    def close_code(cookie: str | None) -> int:
        headers = {"Cookie": cookie} if cookie else {}
        with connect(
            f"{live_site.ws_url}/ws/training-jobs/{job.pk}/",
            additional_headers=headers,
            origin=live_site.url,
            open_timeout=10,
        ) as socket:
            with pytest.raises(ConnectionClosed) as closed:
                socket.recv(timeout=10)
        return closed.value.rcvd.code

    client.force_login(admin_site["student"])
    session = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    assert close_code(None) == 4401
    assert close_code(f"{django_settings.SESSION_COOKIE_NAME}={session}") == 4403


def test_a_resumed_job_s_page_drops_the_steps_its_new_run_trains_again(
    admin_site, live_site, page, login
):
    from django.db import connection

    from webapp.registry.training_jobs.recorder import JobRecorder

    base = ModelVersion.objects.get(label="tiny-base")
    job = TrainingJob.objects.create(
        base_model=base,
        stage="c3po-math",
        total_steps=6,
        status=JobStatus.RUNNING,
        run_token="new-run",
    )
    for step in (1, 2, 3, 4):
        TrainingMetric.objects.create(
            job=job, step=step, metrics={"reward_mean": step / 10, "tokens_trained": 20}
        )
        TrainingSample.objects.create(
            job=job, step=step, prompt=f"Compute {step} + 1.", completion="…", reward=0.0
        )
    login(page, "admin")
    page.goto(f"{live_site.url}/dashboard/jobs/{job.pk}/")
    reward_points = "() => Chart.getChart('chart-reward').data.datasets[0].data.map(p => p.x)"
    # The snapshot drew them; the consumer sends it after joining the job's group, so the event
    # below cannot be sent before the page's socket hears it ("live" shows on accept, earlier).
    page.wait_for_function(f"() => ({reward_points})().length === 4")
    assert page.evaluate(reward_points) == [1, 2, 3, 4]
    expect(page.locator("#samples .sample")).to_have_count(4)

    # The new run's trainer says it goes on after step 2, through the job's recorder: steps 3
    # and 4 (which the dead run had not checkpointed) are deleted and the page is told.
    # (From a thread of its own: Playwright's sync API keeps an event loop on this one.)
    def resumed_at_step_2() -> None:
        try:
            JobRecorder(TrainingJob.objects.get(pk=job.pk)).resumed(2)
        finally:
            connection.close()

    recorder = threading.Thread(target=resumed_at_step_2)
    recorder.start()
    recorder.join(timeout=30)
    assert sorted(job.metrics.values_list("step", flat=True)) == [1, 2]
    page.wait_for_function(f"() => ({reward_points})().length === 2")
    assert page.evaluate(reward_points) == [1, 2]
    expect(page.locator("#samples .sample")).to_have_count(2)
    expect(page.locator("#samples")).not_to_contain_text("Compute 4 + 1.")
