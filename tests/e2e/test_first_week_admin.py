"""An admin's first week in real Chromium (issue: what a first week trips on, Admins 1-3): every
accuracy figure says how it was measured and a quick check never replaces the reference figure;
Promote asks for confirmation, citing the evaluation it rests on, and a dismissed confirmation
changes nothing; Cancel job asks too; the job page follows a job to its end without a reload (no
"Cancel job", no "live" afterwards).

Set UPDATE_DOCS_SCREENSHOTS=1 to refresh docs/images/firstweek-*.png from this run.
"""

import threading

import pytest
from django.db import connection
from playwright.sync_api import expect

from tests.fixtures.browser import docs_screenshot
from tests.webapp.registry.factories import domain_result
from webapp.registry.models import (
    Evaluation,
    EvaluationStatus,
    JobStatus,
    ModelVersion,
    TrainingJob,
    VersionStatus,
)
from webapp.registry.training_jobs import services as training_services
from webapp.registry.training_jobs.evaluation import evaluation_options

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def evaluate(version: ModelVersion, results: dict, **options) -> Evaluation:
    protocol = evaluation_options(**options)
    return Evaluation.objects.create(
        model_version=version,
        status=EvaluationStatus.DONE,
        options=protocol,
        results=results,
        problems_fingerprint=f"fp-{protocol['n_per_level']}-{protocol['max_new_tokens']}",
    )


def finish_in_another_thread(job_id: int) -> None:
    """End a running job the way its runner does (the status event goes out on commit). In a
    thread of its own, like the Celery runner: Playwright's loop owns this one."""

    def finish() -> None:
        try:
            training_services._finish(job_id, "t", status=JobStatus.SUCCEEDED, line="job finished")
        finally:
            connection.close()

    thread = threading.Thread(target=finish)
    thread.start()
    thread.join()


@pytest.fixture
def registry(demo_users):
    champion = ModelVersion.objects.create(
        label="ring-tiny-v1", path="/checkpoints/v1", status=VersionStatus.CHAMPION
    )
    candidate = ModelVersion.objects.create(label="ring-tiny-v2", path="/checkpoints/v2")
    reference = {"math": domain_result(40, 100), "science": domain_result(30, 100)}
    evaluate(champion, reference)
    evaluate(candidate, {"math": domain_result(45, 100), "science": domain_result(31, 100)})
    # A later quick check with a tiny token cap: it must not replace the reference figure.
    evaluate(champion, {"math": domain_result(0, 4)}, n_per_level=1, max_new_tokens=16)
    return champion, candidate


def test_figures_say_how_they_were_measured_and_promote_is_confirmed(
    registry, live_site, page, login
):
    champion, candidate = registry
    login(page, "admin")
    page.goto(f"{live_site.url}/dashboard/")
    champion_row = page.locator("tr[data-version='ring-tiny-v1']")
    reference = champion_row.get_by_role("list", name="Reference evaluation")
    expect(reference).to_contain_text("40.0%")
    expect(reference).to_contain_text("n=100")
    expect(champion_row.locator("[data-eval-settings=reference]")).to_contain_text("25/level")
    quick = champion_row.locator("[data-eval-settings=quick]")
    expect(quick).to_contain_text("Quick check (1/level, ≤16 tokens")
    expect(quick).to_contain_text("math 0.0% n=4")
    docs_screenshot(page, "firstweek-dashboard-evaluations")

    # Promote asks first and cites the evaluation; dismissing it changes nothing.
    messages = []

    def answer(dialog, accept: bool):
        messages.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    candidate_row = page.locator("tr[data-version='ring-tiny-v2']")
    page.once("dialog", lambda d: answer(d, False))
    candidate_row.get_by_role("button", name="Promote", exact=True).click()
    assert messages and "Promote ring-tiny-v2?" in messages[0]
    assert "reference evaluation" in messages[0] and "math 45.0% (n=100)" in messages[0]
    assert "Champion ring-tiny-v1 on the same problems: math 40.0%" in messages[0]
    candidate.refresh_from_db()
    assert candidate.status == VersionStatus.CANDIDATE

    page.once("dialog", lambda d: answer(d, True))
    candidate_row.get_by_role("button", name="Promote", exact=True).click()
    expect(page.locator("#registry .message.success")).to_contain_text("ring-tiny-v2")
    candidate.refresh_from_db()
    assert candidate.status == VersionStatus.CHAMPION


def test_cancel_is_confirmed_and_the_job_page_follows_the_job_to_its_end(
    registry, live_site, page, login
):
    champion, _ = registry
    queued = TrainingJob.objects.create(base_model=champion, stage="math", total_steps=4)
    running = TrainingJob.objects.create(
        base_model=champion, stage="math", total_steps=4, status=JobStatus.RUNNING, run_token="t"
    )
    login(page, "admin")

    # Cancel asks first; after it the page shows no "queued" and no Cancel button.
    page.goto(f"{live_site.url}/dashboard/jobs/{queued.pk}/")
    expect(page.locator("#live-state")).to_have_text("live")
    messages = []
    page.once("dialog", lambda d: (messages.append(d.message), d.accept()))
    page.get_by_role("button", name="Cancel job").click()
    expect(page.locator("#job-status")).to_have_text("Cancelled")
    assert messages and "It has not started and will not run." in messages[0]
    expect(page.get_by_role("button", name="Cancel job")).to_have_count(0)
    expect(page.locator("#live-state")).to_have_text("finished (cancelled)")

    # A running job that ends while its page is open: the page follows without a reload.
    page.goto(f"{live_site.url}/dashboard/jobs/{running.pk}/")
    expect(page.locator("#live-state")).to_have_text("live")
    expect(page.get_by_role("button", name="Cancel job")).to_be_visible()
    finish_in_another_thread(running.pk)
    expect(page.locator("#job-status")).to_have_text("Succeeded")
    expect(page.get_by_role("button", name="Cancel job")).to_have_count(0)
    expect(page.locator("#live-state")).to_have_text("finished (succeeded)")
    docs_screenshot(page, "firstweek-job-finished")
