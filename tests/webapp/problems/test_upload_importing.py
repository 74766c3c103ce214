"""The Import click of a big preview runs in the Celery task `problems.import_upload`: the request
checks the choices (the same errors as an import in the request), marks the upload `importing` and
enqueues the task; the task runs the same all-or-nothing `problem_upload_import`, and the page then
takes the teacher to the new set with the same message. A failure leaves the preview as it was,
saying why; a double click imports once; an older try can never import.

PROBLEM_IMPORT_INLINE_MAX_ITEMS is lowered so a small file stands for a big preview; the task
function is called directly (test_upload_celery.py runs it in a real worker)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from webapp.core.errors import ServiceError
from webapp.problems import services
from webapp.problems.models import OnError, Problem, ProblemSet, ProblemUpload, UploadState
from webapp.problems.tasks import import_upload

pytestmark = pytest.mark.django_db
ITEMS = 12


def csv_file(count: int = ITEMS, *, extra: str = "") -> bytes:
    rows = [f"What is {n} + {n}? (case {n}),{2 * n}" for n in range(count)]
    return ("statement,answer\n" + "\n".join(rows) + "\n" + extra).encode()


@pytest.fixture(autouse=True)
def big_means_over_five(settings):
    settings.PROBLEM_IMPORT_INLINE_MAX_ITEMS = 5


def preview(teacher, data: bytes | None = None) -> ProblemUpload:
    return services.problem_upload_preview(
        teacher=teacher, data=data or csv_file(), filename="week-4.csv"
    )


def test_a_preview_up_to_the_threshold_is_imported_in_the_request(teacher, sent):
    staged = preview(teacher, csv_file(5))
    result = services.problem_upload_import_start(
        upload=staged, teacher=teacher, on_error=OnError.SKIP
    )
    assert result is not None and result.imported == 5
    assert Problem.objects.count() == 5 and not ProblemUpload.objects.exists()
    assert sent == []


def test_a_big_preview_is_marked_and_left_to_the_task(teacher, sent):
    staged = preview(teacher)
    result = services.problem_upload_import_start(
        upload=staged, teacher=teacher, on_error=OnError.SKIP, title="  Week 4  "
    )
    assert result is None
    staged.refresh_from_db()
    assert (staged.state, staged.import_try, staged.title) == (UploadState.IMPORTING, 1, "Week 4")
    assert sent == [("problems.import_upload", [staged.pk, 1])]
    assert not Problem.objects.exists() and not ProblemSet.objects.exists()

    assert import_upload(staged.pk, 1) == UploadState.IMPORTED
    staged.refresh_from_db()
    assert staged.state == UploadState.IMPORTED and not staged.staged_items.exists()
    assert staged.import_result == {
        "imported": ITEMS,
        "skipped_errors": 0,
        "skipped_duplicates": 0,
        "flagged": 0,
    }
    problem_set = ProblemSet.objects.get()
    assert staged.imported_set == problem_set and problem_set.title == "Week 4"
    assert list(problem_set.problems.values_list("position", flat=True)) == list(range(ITEMS))


@pytest.mark.parametrize(
    "on_error,pending,message",
    [
        (OnError.STOP, 0, "you chose to stop on the first error"),
        ("maybe", 0, "Choose whether to skip bad items or stop"),
        (OnError.SKIP, 3, "still reading 3 answer"),
    ],
)
def test_the_choices_are_checked_in_the_request_with_the_same_errors(
    teacher, sent, on_error, pending, message
):
    staged = preview(teacher, csv_file(extra=",7\n"))  # one item with an error
    ProblemUpload.objects.filter(pk=staged.pk).update(pending_checks=pending)
    staged.refresh_from_db()
    with pytest.raises(ServiceError, match=message):
        services.problem_upload_import_start(upload=staged, teacher=teacher, on_error=on_error)
    staged.refresh_from_db()
    assert staged.state == UploadState.READY and sent == []


def test_the_page_imports_in_the_background_then_shows_the_set_with_the_same_message(
    teacher, teacher_client, sent
):
    staged = preview(teacher, csv_file(extra="What is 0 + 0? (case 0),0\n"))  # a duplicate
    url = reverse("problems:upload_preview", args=[staged.token])
    response = teacher_client.post(url, {"on_error": "skip", "title": "Week 4"})
    assert response["Location"] == url
    html = teacher_client.get(url).content.decode()
    assert "Importing…" in html and 'hx-trigger="every 2s"' in html
    assert 'http-equiv="refresh"' in html and "import-form" not in html
    status_url = reverse("problems:upload_status", args=[staged.token])
    assert 'id="importing"' in teacher_client.get(status_url).content.decode()

    import_upload(staged.pk, 1)
    assert teacher_client.get(status_url)["HX-Refresh"] == "true"
    done = teacher_client.get(url, follow=True)
    problem_set = ProblemSet.objects.get()
    assert done.redirect_chain[-1][0] == reverse(
        "problems:problem_set_detail", args=[problem_set.pk]
    )
    page = done.content.decode()
    assert f"Imported {ITEMS} problem(s) into “Week 4”. Left out 1 duplicate(s)." in page
    assert not ProblemUpload.objects.exists()  # the outcome is said once, then forgotten


def test_a_double_click_imports_once(teacher, teacher_client, sent):
    staged = preview(teacher)
    url = reverse("problems:upload_preview", args=[staged.token])
    teacher_client.post(url, {"on_error": "skip", "title": "Once"})
    again = teacher_client.post(url, {"on_error": "skip", "title": "Twice"}, follow=True)
    assert "already being imported" in again.content.decode()
    with pytest.raises(ServiceError, match="already being imported"):
        services.problem_upload_import_start(upload=staged, teacher=teacher, on_error="skip")
    assert sent == [("problems.import_upload", [staged.pk, 1])]
    import_upload(staged.pk, 1)
    assert import_upload(staged.pk, 1) == "superseded"  # a redelivered task does nothing
    assert ProblemSet.objects.get().title == "Once" and Problem.objects.count() == ITEMS


def test_a_refused_import_leaves_the_preview_with_the_reason(teacher, teacher_client, sent):
    staged = preview(teacher)
    services.problem_upload_import_start(upload=staged, teacher=teacher, on_error="skip")
    # Meanwhile the same problems landed in another set: nothing is left to import.
    other = preview(teacher)
    services.problem_upload_import(upload=other, teacher=teacher, on_error="skip")

    assert import_upload(staged.pk, 1) == "refused"
    staged.refresh_from_db()
    assert staged.state == UploadState.READY and staged.staged_items.count() == ITEMS
    html = teacher_client.get(reverse("problems:upload_preview", args=[staged.token]))
    page = html.content.decode()
    assert "The import did not finish" in page and "nothing left to import" in page
    assert "import-form" in page and ProblemSet.objects.count() == 1


def test_an_error_in_the_task_rolls_everything_back_and_the_import_can_be_tried_again(
    teacher, sent, monkeypatch
):
    staged = preview(teacher)
    services.problem_upload_import_start(upload=staged, teacher=teacher, on_error="skip")
    real_bulk_create = Problem.objects.bulk_create

    def broken(*args, **kwargs):
        real_bulk_create(*args, **kwargs)
        raise RuntimeError("the database went away")

    monkeypatch.setattr(Problem.objects, "bulk_create", broken)
    assert import_upload(staged.pk, 1) == "failed"
    assert not Problem.objects.exists() and not ProblemSet.objects.exists()
    staged.refresh_from_db()
    assert staged.state == UploadState.READY
    assert staged.import_error == "The import stopped with an unexpected error."

    monkeypatch.setattr(Problem.objects, "bulk_create", real_bulk_create)
    services.problem_upload_import_start(upload=staged, teacher=teacher, on_error="skip")
    staged.refresh_from_db()
    assert (staged.import_try, staged.import_error) == (2, "")
    assert import_upload(staged.pk, 2) == UploadState.IMPORTED
    assert Problem.objects.count() == ITEMS


def test_a_silent_import_can_be_started_again_and_the_older_try_never_imports(
    teacher, teacher_client, sent, settings, monkeypatch
):
    staged = preview(teacher)
    services.problem_upload_import_start(upload=staged, teacher=teacher, on_error="skip")
    staged.refresh_from_db()
    with pytest.raises(ServiceError, match="cannot be discarded now"):
        services.problem_upload_discard(upload=staged, teacher=teacher)

    long_ago = timezone.now() - timedelta(
        seconds=settings.PROBLEM_UPLOAD_IMPORT_TIMEOUT_SECONDS + 5
    )
    ProblemUpload.objects.filter(pk=staged.pk).update(import_started_at=long_ago)
    staged.refresh_from_db()
    assert staged.import_has_failed
    url = reverse("problems:upload_preview", args=[staged.token])
    page = teacher_client.get(url).content.decode()
    assert "It made no progress for a long time" in page and "import-form" in page
    status = teacher_client.get(reverse("problems:upload_status", args=[staged.token]))
    assert status["HX-Refresh"] == "true"

    services.problem_upload_import_start(upload=staged, teacher=teacher, on_error="skip")
    staged.refresh_from_db()
    assert staged.import_try == 2

    # The first try's task, delivered late, stops before importing anything...
    assert import_upload(staged.pk, 1) == "superseded"
    # ...and one already past that check rolls back at its end when a newer try has started.
    staged.refresh_from_db()
    real_bulk_create = Problem.objects.bulk_create

    def newer_try_starts(*args, **kwargs):
        ProblemUpload.objects.filter(pk=staged.pk).update(import_try=3)
        return real_bulk_create(*args, **kwargs)

    monkeypatch.setattr(Problem.objects, "bulk_create", newer_try_starts)
    assert services.problem_upload_import_run(upload_id=staged.pk, attempt=2) == "superseded"
    assert not Problem.objects.exists() and not ProblemSet.objects.exists()
    # (In this one-connection test the rollback took the newer try's mark with it.)
    monkeypatch.setattr(Problem.objects, "bulk_create", real_bulk_create)
    assert import_upload(staged.pk, 2) == UploadState.IMPORTED
    assert Problem.objects.count() == ITEMS and ProblemSet.objects.count() == 1


def test_discard_is_refused_on_the_page_while_importing(teacher, teacher_client, sent):
    staged = preview(teacher)
    services.problem_upload_import_start(upload=staged, teacher=teacher, on_error="skip")
    response = teacher_client.post(
        reverse("problems:upload_discard", args=[staged.token]), follow=True
    )
    assert "cannot be discarded now" in response.content.decode()
    assert ProblemUpload.objects.filter(pk=staged.pk).exists()


def test_the_imported_set_deleted_before_the_teacher_looks(teacher, teacher_client, sent):
    staged = preview(teacher)
    services.problem_upload_import_start(upload=staged, teacher=teacher, on_error="skip")
    import_upload(staged.pk, 1)
    ProblemSet.objects.all().delete()
    response = teacher_client.get(reverse("problems:upload_preview", args=[staged.token]))
    assert response["Location"] == reverse("problems:problem_set_list")
