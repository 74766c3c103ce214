"""A big upload is read by the Celery task `problems.read_upload`, not in the request: the request
stores the file and enqueues the task; the task reads it with the same code as a small file read in
the request, saving progress for the preview; a refused file goes back to the upload page with the
teacher's choices; a read that fails or goes silent can be tried again, and an older try never
writes over a newer one; a teacher has at most MAX_FILES_READING_PER_TEACHER files being read.

The task function is called directly (the enqueued call is captured), as the other upload tests
do; tests/webapp/problems/test_upload_celery.py runs it in a real worker."""

import re
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from webapp.core.errors import ServiceError
from webapp.problems import services
from webapp.problems.importers import PROGRESS_EVERY, UploadRefused
from webapp.problems.models import OnError, Problem, ProblemSet, ProblemUpload, UploadState
from webapp.problems.tasks import read_upload

pytestmark = pytest.mark.django_db


def big_csv(count: int = 600, *, extra: str = "") -> bytes:
    rows = [f"What is {n} + {n}? (case {n}),{2 * n}" for n in range(count)]
    return ("statement,answer\n" + "\n".join(rows) + "\n" + extra).encode()


def item_rows(upload: ProblemUpload) -> list[dict]:
    """The upload's staged items as plain values, in file order (no ids)."""
    return list(
        upload.staged_items.order_by("position").values(
            "position",
            "number",
            "line",
            "where",
            "status",
            "data",
            "errors",
            "warnings",
            "duplicate_of",
        )
    )


def receive(teacher, data: bytes, **options) -> ProblemUpload:
    return services.problem_upload_receive(
        teacher=teacher, data=data, filename=options.pop("filename", "week-3.csv"), **options
    )


def post_upload(client, filename: str, data: bytes):
    """The upload page's form, as a teacher sends it with the default choices."""
    return client.post(
        reverse("problems:upload"),
        {
            "format": "auto",
            "default_domain": "math",
            "target_set": "",
            "on_error": "skip",
            "file": SimpleUploadedFile(filename, data),
        },
    )


def test_a_small_file_is_still_read_in_the_request(teacher, sent):
    staged = receive(teacher, b"statement,answer\nWhat is 2+3?,5\n")
    assert staged.state == UploadState.READY and staged.ready_count == 1
    assert staged.raw_data is None
    assert sent == []


def test_the_read_task_is_sent_by_name_once_the_row_is_committed(
    teacher, monkeypatch, django_capture_on_commit_callbacks
):
    enqueued = []
    monkeypatch.setattr(
        "webapp.celery_app.send_task", lambda name, args, **options: enqueued.append((name, args))
    )
    with django_capture_on_commit_callbacks(execute=True):
        staged = receive(teacher, big_csv(600))
        assert enqueued == []
    assert enqueued == [("problems.read_upload", [staged.pk, 1])]


@pytest.mark.parametrize(
    "data",
    [big_csv(600), b"statement,answer\n" + b"What is the answer?," + b"4" * 17_000 + b"\n"],
    ids=["over 500 lines", "over 16 KiB"],
)
def test_a_big_file_is_stored_and_left_to_the_task(teacher, sent, data):
    staged = receive(teacher, data, title="Week 3", on_error=OnError.STOP)
    assert staged.state == UploadState.READING
    assert bytes(staged.raw_data) == data
    assert (staged.staged_items.count(), staged.ready_count, staged.read_try) == (0, 0, 1)
    assert (staged.title, staged.on_error) == ("Week 3", OnError.STOP)
    assert sent == [("problems.read_upload", [staged.pk, 1])]


def test_the_size_limit_is_checked_before_anything(teacher, sent, settings):
    settings.PROBLEM_UPLOAD_MAX_BYTES = 1000
    with pytest.raises(UploadRefused, match="the limit is"):
        receive(teacher, big_csv(600))
    assert not ProblemUpload.objects.exists() and sent == []


def test_the_task_reads_the_file_exactly_as_the_request_does(teacher, other_teacher, sent):
    data = big_csv(600, extra="What is 0 + 0? (case 0),0\n,7\n")  # a duplicate and an error
    staged = receive(teacher, data)
    assert read_upload(staged.pk, 1) == UploadState.READY

    staged.refresh_from_db()
    inline = services.problem_upload_preview(teacher=teacher, data=data, filename="week-3.csv")
    assert staged.state == UploadState.READY and staged.raw_data is None
    assert (staged.ready_count, staged.error_count, staged.duplicate_count) == (600, 1, 1)
    assert item_rows(staged) == item_rows(inline)
    assert (staged.title, staged.source_format, staged.encoding) == (
        inline.title,
        inline.source_format,
        inline.encoding,
    )
    assert (staged.read_done, staged.read_total) == (602, 602)

    result = services.problem_upload_import(upload=staged, teacher=teacher, on_error=OnError.SKIP)
    assert result.imported == 600 and Problem.objects.count() == 600


def test_the_task_saves_its_progress_every_250_items(teacher, sent, monkeypatch):
    staged = receive(teacher, big_csv(600))
    seen: list[tuple[int, int]] = []
    real_validate = services.read_problem_file.__globals__["validate_item"]

    def validate_and_look(raw, **options):
        seen.append(ProblemUpload.objects.values_list("read_done", "read_total").get(pk=staged.pk))
        return real_validate(raw, **options)

    monkeypatch.setitem(services.read_problem_file.__globals__, "validate_item", validate_and_look)
    read_upload(staged.pk, 1)
    assert PROGRESS_EVERY == 250
    assert seen[0] == (0, 600)  # the total is known once the file is parsed
    assert sorted(set(seen)) == [(0, 600), (250, 600), (500, 600)]


def test_many_symbolic_answers_are_still_checked_by_their_own_task(teacher, sent, monkeypatch):
    monkeypatch.setattr(services, "INLINE_ANSWER_CHECKS", 2)
    rows = [f"Expand (x+{n})^2.,x^2+{2 * n}x+{n * n}" for n in range(1, 6)]
    data = big_csv(600, extra="\n".join(rows) + "\n")
    staged = receive(teacher, data)
    read_upload(staged.pk, 1)
    staged.refresh_from_db()
    assert (staged.pending_checks, staged.checks_total) == (5, 5)
    assert sent[-1] == ("problems.check_upload_answers", [staged.pk])
    services.problem_upload_check_answers(upload_id=staged.pk)
    staged.refresh_from_db()
    assert staged.pending_checks == 0


def test_a_refused_big_file_goes_back_to_the_upload_page_with_the_choices(
    teacher, teacher_client, sent
):
    target = services.problem_set_create(teacher=teacher, title="Algebra")
    data = big_csv(600, extra='"<script>alert(1)</script>",2\n')
    staged = receive(
        teacher,
        data,
        format="csv",
        default_domain="science",
        on_error=OnError.STOP,
        title="Kept title",
        target_set=target,
    )
    assert read_upload(staged.pk, 1) == UploadState.REFUSED
    staged.refresh_from_db()
    assert staged.state == UploadState.REFUSED and staged.raw_data is None
    assert "could run in a browser" in staged.read_error

    preview = teacher_client.get(reverse("problems:upload_preview", args=[staged.token]))
    assert preview.status_code == 302
    page = teacher_client.get(preview["Location"])
    html = page.content.decode()
    assert "This file was not imported" in html and "could run in a browser" in html
    assert "Line 602, statement: It contains an HTML &lt;script&gt; tag" in html
    assert '<option value="csv" selected>' in html
    assert '<option value="science" selected>' in html
    assert f'<option value="{target.pk}" selected>' in html
    assert re.search(r'value="stop"[^>]*checked', html)
    assert 'value="Kept title"' in html
    assert not Problem.objects.exists()


def test_a_bad_refused_token_is_ignored(teacher_client):
    page = teacher_client.get(reverse("problems:upload"), {"refused": "not-a-uuid\x00"})
    assert page.status_code == 200 and "This file was not imported" not in page.content.decode()


def test_a_failed_read_offers_to_try_again_and_an_older_try_cannot_write(
    teacher, teacher_client, sent, monkeypatch
):
    staged = receive(teacher, big_csv(600))
    real_stage_items = services._stage_items

    def broken(*args, **kwargs):
        raise RuntimeError("the reader broke")

    monkeypatch.setattr(services, "_stage_items", broken)
    assert read_upload(staged.pk, 1) == UploadState.FAILED
    staged.refresh_from_db()
    assert staged.state == UploadState.FAILED and staged.raw_data is not None

    url = reverse("problems:upload_preview", args=[staged.token])
    html = teacher_client.get(url).content.decode()
    assert "We couldn't read this file" in html and "Try again" in html
    assert 'http-equiv="refresh"' not in html  # nothing to wait for
    status = teacher_client.get(reverse("problems:upload_status", args=[staged.token]))
    assert status["HX-Refresh"] == "true"

    monkeypatch.setattr(services, "_stage_items", real_stage_items)
    retried = teacher_client.post(reverse("problems:upload_retry", args=[staged.token]))
    assert retried["Location"] == url
    staged.refresh_from_db()
    assert (staged.state, staged.read_try) == (UploadState.READING, 2)
    assert sent[-1] == ("problems.read_upload", [staged.pk, 2])

    # The first try's task, delivered late, finds it is no longer its try and writes nothing.
    assert read_upload(staged.pk, 1) == "superseded"
    staged.refresh_from_db()
    assert (staged.state, staged.read_try) == (UploadState.READING, 2)
    assert not staged.staged_items.exists()

    assert read_upload(staged.pk, 2) == UploadState.READY
    assert "Import 600 problems" in teacher_client.get(url).content.decode()


def test_an_older_try_stops_at_its_next_progress_save(teacher, sent, monkeypatch):
    staged = receive(teacher, big_csv(600))
    real_validate = services.read_problem_file.__globals__["validate_item"]
    calls = []

    def newer_try_starts(raw, **options):
        calls.append(1)
        if len(calls) == 100:  # a retry while this task is still reading
            ProblemUpload.objects.filter(pk=staged.pk).update(read_try=2)
        return real_validate(raw, **options)

    monkeypatch.setitem(services.read_problem_file.__globals__, "validate_item", newer_try_starts)
    assert read_upload(staged.pk, 1) == "superseded"
    assert len(calls) == PROGRESS_EVERY  # it stopped at the first save after the retry
    staged.refresh_from_db()
    assert (staged.state, staged.read_done) == (UploadState.READING, 0)
    assert not staged.staged_items.exists()


def test_a_silent_read_counts_as_failed_and_can_be_tried_again(
    teacher, teacher_client, sent, settings
):
    staged = receive(teacher, big_csv(600))
    url = reverse("problems:upload_preview", args=[staged.token])
    html = teacher_client.get(url).content.decode()
    assert "Reading your file…" in html and 'http-equiv="refresh"' in html
    assert "We couldn't read" not in html

    long_ago = timezone.now() - timedelta(seconds=settings.PROBLEM_UPLOAD_READ_TIMEOUT_SECONDS + 5)
    ProblemUpload.objects.filter(pk=staged.pk).update(read_progress_at=long_ago)
    staged.refresh_from_db()
    assert staged.read_has_failed
    assert "We couldn't read this file" in teacher_client.get(url).content.decode()
    status = teacher_client.get(reverse("problems:upload_status", args=[staged.token]))
    assert status["HX-Refresh"] == "true"

    services.problem_upload_retry(upload=staged, teacher=teacher)
    staged.refresh_from_db()
    assert staged.read_try == 2 and not staged.read_has_failed


def test_retry_is_refused_while_the_read_is_going_well(teacher, sent):
    staged = receive(teacher, big_csv(600))
    with pytest.raises(ServiceError, match="not waiting for another try"):
        services.problem_upload_retry(upload=staged, teacher=teacher)


def test_at_most_three_files_are_read_at_once_per_teacher(
    teacher, other_teacher, teacher_client, sent, settings
):
    for _ in range(services.MAX_FILES_READING_PER_TEACHER):
        receive(teacher, big_csv(600))
    with pytest.raises(ServiceError, match="already have 3 files being read"):
        receive(teacher, big_csv(600))
    receive(other_teacher, big_csv(600))  # another teacher's files are their own
    assert receive(teacher, b"statement,answer\nWhat is 2+3?,5\n").state == UploadState.READY

    response = post_upload(teacher_client, "more.csv", big_csv(600))
    assert response.status_code == 400
    assert "Wait until one of their previews appears" in response.content.decode()

    # A read that went silent does not count against the limit.
    long_ago = timezone.now() - timedelta(seconds=settings.PROBLEM_UPLOAD_READ_TIMEOUT_SECONDS + 5)
    ProblemUpload.objects.filter(owner=teacher).update(read_progress_at=long_ago)
    assert receive(teacher, big_csv(600)).state == UploadState.READING


def test_import_is_refused_and_discard_works_while_the_file_is_read(teacher, teacher_client, sent):
    staged = receive(teacher, big_csv(600))
    with pytest.raises(ServiceError, match="still being read"):
        services.problem_upload_import(upload=staged, teacher=teacher, on_error=OnError.SKIP)
    url = reverse("problems:upload_preview", args=[staged.token])
    page = teacher_client.post(url, {"on_error": "skip", "title": "x"}, follow=True)
    assert "still being read" in page.content.decode()
    assert not ProblemSet.objects.exists()

    teacher_client.post(reverse("problems:upload_discard", args=[staged.token]))
    assert not ProblemUpload.objects.exists()
    assert read_upload(staged.pk, 1) == "superseded"  # the task finds nothing to read


def test_the_upload_page_sends_a_big_file_to_the_task_and_the_preview_polls(
    teacher, teacher_client, sent
):
    response = post_upload(teacher_client, "week-3.csv", big_csv(600))
    staged = ProblemUpload.objects.get()
    assert response["Location"] == reverse("problems:upload_preview", args=[staged.token])
    assert sent == [("problems.read_upload", [staged.pk, 1])]

    html = teacher_client.get(response["Location"]).content.decode()
    assert "Reading your file…" in html and 'hx-trigger="every 2s"' in html
    assert "import-form" not in html

    status_url = reverse("problems:upload_status", args=[staged.token])
    ProblemUpload.objects.filter(pk=staged.pk).update(read_done=250, read_total=600)
    fragment = teacher_client.get(status_url).content.decode()
    assert "250 of 600 items" in fragment and 'id="reading"' in fragment

    read_upload(staged.pk, 1)
    assert teacher_client.get(status_url)["HX-Refresh"] == "true"
    html = teacher_client.get(response["Location"]).content.decode()
    assert "Import 600 problems" in html and "Reading your file" not in html


def test_another_teacher_cannot_retry_my_upload(teacher, other_teacher, client, sent):
    staged = receive(teacher, big_csv(600))
    client.force_login(other_teacher)
    response = client.post(reverse("problems:upload_retry", args=[staged.token]))
    assert response.status_code == 404
