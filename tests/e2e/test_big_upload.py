"""A big file in real Chromium: the upload request only stores it, the preview says "Reading your
file… N of M items" while the Celery worker reads it, and the preview appears by itself.

The session's worker stops taking tasks from the `default` queue while the test looks at the
reading page (Celery's cancel_consumer), so that page is seen whatever the machine's speed; the
progress in the picture (docs/images/teacher-upload-reading.png, with UPDATE_DOCS_SCREENSHOTS=1)
is written on the row the way the read task saves it. Then the worker takes the task again and
reads the file for real.
"""

import re

import pytest
from playwright.sync_api import expect

from tests.fixtures.browser import docs_screenshot
from webapp.celery import app as celery_app
from webapp.problems.models import ProblemUpload, UploadState

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROWS = 2_000


@pytest.fixture
def paused_worker(celery_worker_process):
    """The session's worker, not consuming `default` until `resume()` (or the test's end)."""
    workers = [node for reply in celery_app.control.ping(timeout=1.0) or [] for node in reply]
    assert workers, celery_worker_process.log()[-3000:]
    celery_app.control.cancel_consumer("default", destination=workers, reply=True)
    paused = [True]

    def resume() -> None:
        if paused[0]:
            celery_app.control.add_consumer("default", destination=workers, reply=True)
            paused[0] = False

    yield resume
    resume()


def test_a_big_file_is_read_in_the_background_while_the_preview_shows_progress(
    demo_users, live_site, page, login, paused_worker, celery_worker_process, tmp_path
):
    rows = [f"What is {n} + {n}? (question {n}),{2 * n},week {n % 12 + 1}" for n in range(ROWS)]
    big = tmp_path / "term-2-homework.csv"
    big.write_text("statement,answer,tags\n" + "\n".join(rows) + "\n")

    login(page, "teacher")
    page.goto(f"{live_site.url}/teach/sets/upload/")
    page.get_by_label("Problem file").set_input_files(str(big))
    page.get_by_role("button", name="Preview").click()

    expect(page.get_by_role("heading", name="Preview of term-2-homework.csv")).to_be_visible()
    reading = page.get_by_role("status")
    expect(reading).to_contain_text("Reading your file…")
    staged = ProblemUpload.objects.get()
    assert staged.state == UploadState.READING and staged.items == []

    # What the read task saves every 250 items; the page's poll shows it.
    ProblemUpload.objects.filter(pk=staged.pk).update(read_done=750, read_total=ROWS)
    expect(reading).to_contain_text(f"750 of {ROWS} items checked")
    docs_screenshot(page, "teacher-upload-reading")

    paused_worker()
    expect(page.get_by_role("button", name=f"Import {ROWS} problems")).to_be_visible(timeout=90_000)
    expect(page.get_by_text(re.compile("Reading your file"))).to_have_count(0)
    staged.refresh_from_db()
    assert staged.state == UploadState.READY and staged.ready_count == ROWS, (
        celery_worker_process.log()[-3000:]
    )
