"""Many accounts together, or a teacher's uploads, keeping every answer checker busy.

The checker processes (`ANSWER_CHECK_WORKERS` per server process) are shared by every request of
the process. Each student may hold one at a time (webapp.tutoring.answer_limits), but many accounts
together can keep them all busy. Then a check waits its turn for at most
`ANSWER_CHECK_WAIT_SECONDS` and is "couldn't check right now": the student's answer is saved
unchecked (never wrong), a reference answer read by an upload goes to the background check at
once, and one typed in the single-problem form is "not available, save again". Before, a
reference answer waited up to 60 s for a checker in the request (measured: an upload request held
18.6 s, a single-problem save 17.5 s, by a 20-account flood; docs/security.md), and a teacher's
uploads took freed checkers back ahead of waiting students.

Real checker processes: a pool of one worker kept busy by `(999*999)!` (cut off at the 1 s limit).
"""

import threading
import time

import pytest
from django.urls import reverse

from training.answer_pool import UNAVAILABLE_REFERENCE, AnswerCheckPool, bounded_verify
from webapp.core import answer_checks
from webapp.problems import services
from webapp.tutoring.models import OwnAnswer

WAIT_S = 0.3
# Scheduling on a loaded test machine; the worker is held 1 s, well past the wait.
MARGIN_S = 0.5
SLOW = "(999*999)!"


@pytest.fixture(scope="module")
def one_checker():
    pool = AnswerCheckPool(workers=1, timeout_s=1.0, wait_s=WAIT_S)
    deadline = time.monotonic() + 120
    while bounded_verify(pool, "x+1", "1+x", kind="expression") is not True:  # started
        assert time.monotonic() < deadline
    yield pool
    pool.close()


@pytest.fixture
def busy(one_checker, monkeypatch):
    """The site's answer checks go to `one_checker`; entering `busy()` keeps its worker busy."""
    monkeypatch.setattr(answer_checks, "_pool", lambda: one_checker)

    class Busy:
        def __enter__(self):
            self.holder = threading.Thread(
                target=bounded_verify, args=(one_checker, "5", SLOW), kwargs={"kind": "expression"}
            )
            self.holder.start()
            time.sleep(0.1)  # the holder has the worker
            return self

        def __exit__(self, *exc):
            self.holder.join()

    return Busy


def test_a_students_answer_while_every_checker_is_busy_is_saved_as_unchecked(
    busy, client, symbolic_attempt, student
):
    client.force_login(student)
    url = reverse("tutoring:own_answer_create", args=[symbolic_attempt.pk])
    with busy():
        start = time.monotonic()
        response = client.post(url, {"answer": "(x+1)^2"}, HTTP_HX_REQUEST="true")
        elapsed = time.monotonic() - start
    assert elapsed < WAIT_S + MARGIN_S
    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-own-verdict="timed-out"' in page and "busy" in page
    assert OwnAnswer.objects.get().is_correct is None  # saved unchecked, never as wrong


def test_an_upload_read_while_the_checkers_are_busy_leaves_the_answers_to_the_background(
    busy, teacher, enqueued_tasks
):
    csv = "statement,answer_type,answer\n" + "".join(
        f"Expand $(x+{n})^2$.,expression,x^2+{2 * n}x+{n * n}\n" for n in range(1, 6)
    )
    with busy():
        start = time.monotonic()
        staged = services.problem_upload_preview(
            teacher=teacher, data=csv.encode(), filename="algebra.csv"
        )
        elapsed = time.monotonic() - start
    # Not one wait per answer, nor one for the first: no checker was free at once.
    assert elapsed < MARGIN_S
    assert (staged.pending_checks, staged.flagged_count) == (5, 0)  # none marked unreadable
    assert enqueued_tasks == [("problems.check_upload_answers", (staged.pk,))]
    assert services.problem_upload_check_answers(upload_id=staged.pk) == 5
    staged.refresh_from_db()
    assert (staged.pending_checks, staged.flagged_count) == (0, 0)


def test_a_reference_answer_typed_while_the_checkers_are_busy_waits_at_most_the_wait(busy):
    with busy():
        start = time.monotonic()
        message = answer_checks.reference_problem("x^2+2x+1", "expression")
        elapsed = time.monotonic() - start
    assert elapsed < WAIT_S + MARGIN_S
    assert message == UNAVAILABLE_REFERENCE  # "save the problem again to retry"
