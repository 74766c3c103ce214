"""A big file in real Chromium: the upload request only stores it, the preview says "Reading your
file… N of M items" while the Celery worker reads it, and the preview appears by itself; the Import
click of its 2,000 items says "Importing…" while the worker imports them, then the new set opens
with the usual message.

The session's worker stops taking tasks from the `default` queue while the test looks at the
reading and importing pages (Celery's cancel_consumer), so those pages are seen whatever the
machine's speed; the progress in the picture (docs/images/teacher-upload-reading.png, with
UPDATE_DOCS_SCREENSHOTS=1) is written on the row the way the read task saves it. Then the worker
takes the task again and does the work for real.
"""

import re

import pytest
from playwright.sync_api import expect

from tests.fixtures.browser import docs_screenshot
from webapp.celery import app as celery_app
from webapp.problems.models import ProblemSet, ProblemUpload, UploadState

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROWS = 2_000


class Worker:
    """The session's worker, whose taking of `default` tasks the test switches off and on."""

    def __init__(self) -> None:
        self.nodes = [
            node for reply in celery_app.control.ping(timeout=1.0) or [] for node in reply
        ]
        self.paused = False

    def pause(self) -> None:
        celery_app.control.cancel_consumer("default", destination=self.nodes, reply=True)
        self.paused = True

    def resume(self) -> None:
        if self.paused:
            celery_app.control.add_consumer("default", destination=self.nodes, reply=True)
            self.paused = False


@pytest.fixture
def worker(celery_worker_process):
    worker = Worker()
    assert worker.nodes, celery_worker_process.log()[-3000:]
    yield worker
    worker.resume()


def test_a_big_file_is_read_and_imported_in_the_background_while_the_page_shows_progress(
    demo_users, live_site, page, login, worker, celery_worker_process, tmp_path
):
    rows = [f"What is {n} + {n}? (question {n}),{2 * n},week {n % 12 + 1}" for n in range(ROWS)]
    big = tmp_path / "term-2-homework.csv"
    big.write_text("statement,answer,tags\n" + "\n".join(rows) + "\n")

    login(page, "teacher")
    page.goto(f"{live_site.url}/teach/sets/upload/")
    page.get_by_label("Problem file").set_input_files(str(big))
    worker.pause()
    page.get_by_role("button", name="Preview").click()

    expect(page.get_by_role("heading", name="Preview of term-2-homework.csv")).to_be_visible()
    reading = page.get_by_role("status")
    expect(reading).to_contain_text("Reading your file…")
    staged = ProblemUpload.objects.get()
    assert staged.state == UploadState.READING and not staged.staged_items.exists()

    # What the read task saves every 250 items; the page's poll shows it.
    ProblemUpload.objects.filter(pk=staged.pk).update(read_done=750, read_total=ROWS)
    expect(reading).to_contain_text(f"750 of {ROWS:,} items checked")
    docs_screenshot(page, "teacher-upload-reading")

    worker.resume()
    import_button = page.get_by_role("button", name=f"Import {ROWS:,} problems")
    expect(import_button).to_be_visible(timeout=90_000)
    expect(page.get_by_text(re.compile("Reading your file"))).to_have_count(0)
    staged.refresh_from_db()
    assert staged.state == UploadState.READY and staged.ready_count == ROWS, (
        celery_worker_process.log()[-3000:]
    )

    # More ready items than PROBLEM_IMPORT_INLINE_MAX_ITEMS: the import runs in the task too.
    page.get_by_label("Title of the new set").fill("Term 2 homework")
    worker.pause()
    import_button.click()
    expect(page.get_by_role("status")).to_contain_text(
        f"Importing… {ROWS:,} problems as the new set “Term 2 homework”"
    )
    assert not ProblemSet.objects.exists()
    docs_screenshot(page, "teacher-upload-importing")

    worker.resume()
    expect(page.get_by_text(f"Imported {ROWS:,} problem(s) into “Term 2 homework”.")).to_be_visible(
        timeout=90_000
    )
    expect(page.get_by_role("heading", name="Term 2 homework")).to_be_visible()
    assert ProblemSet.objects.get().problems.count() == ROWS
    assert not ProblemUpload.objects.exists()
