"""generation_enqueue / generation_cancel on the real database and Redis."""

import pytest

from inference_contract.event_log import read_log
from inference_contract.protocol import (
    GENERATION_STREAM,
    cancel_channel,
    cancel_key,
)
from webapp.core.errors import ServiceError
from webapp.core.redis_client import redis_client
from webapp.tutoring.generation_selectors import generation_queue_position
from webapp.tutoring.generation_services import generation_cancel, generation_enqueue
from webapp.tutoring.models import Attempt, Generation

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("redis_url")]


@pytest.fixture
def attempt(student, practice_set):
    return Attempt.objects.create(student=student, problem=practice_set.problems.first())


def _stream_entries_for(generation_id: int) -> list[dict]:
    return [
        fields
        for _id, fields in redis_client().xrevrange(GENERATION_STREAM, count=200)
        if fields.get("generation_id") == str(generation_id)
    ]


def test_enqueue_creates_a_queued_row_and_queues_it_on_commit(
    attempt, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        generation = generation_enqueue(attempt=attempt, kind="hint", hint_index=2)
    assert generation.status == "queued" and generation.kind == "hint"
    assert _stream_entries_for(generation.pk) == []  # nothing is queued before the commit
    for callback in callbacks:
        callback()
    # Self-contained: the worker can start the engine before it reads the row.
    assert _stream_entries_for(generation.pk) == [
        {
            "generation_id": str(generation.pk),
            "hint_index": "2",
            "kind": "hint",
            "prompt_text": attempt.problem.statement,
        }
    ]


def test_a_students_own_wording_travels_with_the_request(
    attempt, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        generation = generation_enqueue(attempt=attempt, prompt_text="What is half plus a third?")
    (entry,) = _stream_entries_for(generation.pk)
    assert entry["prompt_text"] == "What is half plus a third?"


def test_a_prompt_over_the_limit_is_refused(attempt, settings):
    settings.INFERENCE = {**settings.INFERENCE, "MAX_PROMPT_CHARS": 20}
    with pytest.raises(ServiceError) as caught:
        generation_enqueue(attempt=attempt, prompt_text="x" * 21)
    assert caught.value.code == "prompt_too_long"
    assert "at most 20" in caught.value.message
    assert not Generation.objects.exists()


def test_a_student_may_not_run_more_than_the_concurrency_limit(attempt, settings):
    settings.INFERENCE = {**settings.INFERENCE, "MAX_CONCURRENT_PER_USER": 2}
    first = generation_enqueue(attempt=attempt)
    generation_enqueue(attempt=attempt)
    with pytest.raises(ServiceError) as caught:
        generation_enqueue(attempt=attempt)
    assert (caught.value.code, caught.value.status) == ("too_many_generations", 429)
    # A finished one frees its slot.
    Generation.objects.filter(pk=first.pk).update(status="done")
    generation_enqueue(attempt=attempt)


def test_unknown_kind_is_refused(attempt):
    with pytest.raises(ServiceError):
        generation_enqueue(attempt=attempt, kind="essay")


def test_cancelling_a_queued_generation_ends_it_at_once(
    attempt, student, django_capture_on_commit_callbacks
):
    generation = generation_enqueue(attempt=attempt)
    with django_capture_on_commit_callbacks(execute=True):
        generation_cancel(generation=generation, user=student)
    assert generation.status == "cancelled" and generation.cancel_requested
    assert generation.finished_at is not None
    # The page's socket follows the generation's log: `done` is there.
    log = read_log(redis_client(), generation.pk)
    assert log.done is not None and log.done["status"] == "cancelled"


def test_cancelling_a_running_generation_asks_the_worker(
    attempt, student, django_capture_on_commit_callbacks
):
    generation = generation_enqueue(attempt=attempt)
    Generation.objects.filter(pk=generation.pk).update(status="running", worker_id="w1")
    subscriber = redis_client().pubsub()
    subscriber.subscribe(cancel_channel(redis_client()))
    subscriber.get_message(timeout=2)  # the subscribe confirmation
    with django_capture_on_commit_callbacks(execute=True):
        generation_cancel(generation=generation, user=student)
    message = subscriber.get_message(timeout=5)
    subscriber.close()
    assert message["data"] == str(generation.pk)
    assert redis_client().get(cancel_key(generation.pk)) == "1"
    generation.refresh_from_db()
    assert generation.status == "running" and generation.cancel_requested


def test_only_the_student_or_an_admin_may_cancel(attempt, other_student):
    generation = generation_enqueue(attempt=attempt)
    with pytest.raises(ServiceError) as caught:
        generation_cancel(generation=generation, user=other_student)
    assert caught.value.status == 403


def test_cancelling_a_finished_generation_changes_nothing(attempt, student):
    generation = generation_enqueue(attempt=attempt)
    Generation.objects.filter(pk=generation.pk).update(status="done")
    generation.refresh_from_db()
    generation_cancel(generation=generation, user=student)
    generation.refresh_from_db()
    assert generation.status == "done" and not generation.cancel_requested


def test_queue_position_counts_the_queued_generations_ahead(attempt):
    first = generation_enqueue(attempt=attempt)
    second = generation_enqueue(attempt=attempt)
    assert generation_queue_position(generation=first) == 1
    assert generation_queue_position(generation=second) == 2
    Generation.objects.filter(pk=first.pk).update(status="running")
    second.refresh_from_db()
    assert generation_queue_position(generation=second) == 1
