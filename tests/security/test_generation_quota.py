"""Generation quotas (issue 12: "one account can keep the engine busy all day"): hints and solutions
per student per hour and per day, shown before they run out, refused with a clear message when
they have, and never counted for a site admin."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from webapp.accounts.services import user_create
from webapp.core.errors import ServiceError
from webapp.problems.models import Problem
from webapp.tutoring.generation_services import generation_enqueue
from webapp.tutoring.models import Attempt, Generation, GenerationStatus
from webapp.tutoring.quotas import generation_quota

pytestmark = pytest.mark.django_db


@pytest.fixture
def attempt(student):
    problem = Problem.objects.create(created_by=student, statement="Compute 2 + 2.")
    return Attempt.objects.create(student=student, problem=problem)


def used(attempt, count, *, ago=timedelta(minutes=1), status=GenerationStatus.DONE):
    """`count` finished generations of `attempt`, queued `ago` in the past."""
    rows = Generation.objects.bulk_create(
        Generation(attempt=attempt, status=status) for _ in range(count)
    )
    Generation.objects.filter(pk__in=[row.pk for row in rows]).update(
        queued_at=timezone.now() - ago
    )


def test_the_hourly_quota_refuses_with_the_time_it_frees(attempt, settings):
    settings.GENERATION_QUOTA_PER_HOUR = 5
    used(attempt, 4, ago=timedelta(minutes=50))
    generation_enqueue(attempt=attempt)  # the fifth fits
    with pytest.raises(ServiceError) as refused:
        generation_enqueue(attempt=attempt)
    error = refused.value
    assert error.code == "quota_exceeded" and error.status == 429
    assert "in the last hour" in error.message and "(5)" in error.message
    # The oldest of the five ages out of the hour ten minutes from now.
    frees = timezone.localtime(timezone.now() + timedelta(minutes=10))
    assert f"You can ask again at {frees:%H:%M}" in error.message
    assert Generation.objects.filter(attempt=attempt).count() == 5


def test_the_daily_quota_counts_the_last_24_hours(attempt, settings):
    settings.GENERATION_QUOTA_PER_DAY = 6
    used(attempt, 6, ago=timedelta(hours=5))
    with pytest.raises(ServiceError, match="in the last 24 hours"):
        generation_enqueue(attempt=attempt)
    Generation.objects.update(queued_at=timezone.now() - timedelta(hours=25))
    generation_enqueue(attempt=attempt)


def test_the_concurrency_limit_counts_active_generations_whenever_queued(attempt, settings):
    # Read in the quota's statement: a generation queued two days ago and still running (a stuck
    # one) holds a slot although it is outside both quota windows.
    settings.INFERENCE = {**settings.INFERENCE, "MAX_CONCURRENT_PER_USER": 2}
    used(attempt, 1, ago=timedelta(days=2), status=GenerationStatus.RUNNING)
    used(attempt, 1, ago=timedelta(minutes=5), status=GenerationStatus.QUEUED)
    used(attempt, 3, ago=timedelta(minutes=5))
    quota = generation_quota(user=attempt.student)
    assert (quota.active, quota.hour.used, quota.day.used) == (2, 4, 4)
    with pytest.raises(ServiceError, match="You already have 2 solutions being written"):
        generation_enqueue(attempt=attempt)
    Generation.objects.filter(status=GenerationStatus.RUNNING).update(status=GenerationStatus.DONE)
    generation_enqueue(attempt=attempt)


def test_failed_generations_do_not_count(attempt, settings):
    settings.GENERATION_QUOTA_PER_HOUR = 2
    used(attempt, 5, status=GenerationStatus.FAILED)
    generation_enqueue(attempt=attempt)


def test_admins_are_exempt(settings):
    settings.GENERATION_QUOTA_PER_HOUR = 1
    admin = user_create(username="boss", password="x", role="admin", validate=False)
    problem = Problem.objects.create(created_by=admin, statement="Compute 3 + 3.")
    attempt = Attempt.objects.create(student=admin, problem=problem)
    used(attempt, 3)
    generation_enqueue(attempt=attempt)
    assert generation_quota(user=admin).exhausted is None


def test_the_counter_shows_past_half_and_the_ask_page_refuses_when_full(
    client, student, attempt, settings
):
    settings.GENERATION_QUOTA_PER_HOUR = 10
    client.force_login(student)
    used(attempt, 4)
    assert "data-quota" not in client.get(reverse("tutoring:student_home")).content.decode()

    used(attempt, 1)
    page = client.get(reverse("tutoring:student_home")).content.decode()
    assert "<strong>5 of 10</strong> this hour" in page

    used(attempt, 5)
    response = client.post(
        reverse("tutoring:attempt_create"), {"statement": "Compute 9 * 9.", "mode": "solve"}
    )
    assert response.status_code == 422
    page = response.content.decode()
    assert "the most the site allows (10)" in page and "You can ask again at" in page
    assert "<strong>10 of 10</strong> in the last hour" in page  # the counter says it too
    assert not Attempt.objects.filter(problem__statement="Compute 9 * 9.").exists()


def test_a_hint_over_quota_gets_the_message_in_the_page(client, student, attempt, settings):
    settings.GENERATION_QUOTA_PER_HOUR = 2
    used(attempt, 2)  # on another problem: the quota is the student's, not the attempt's
    problem = Problem.objects.create(created_by=student, statement="Compute 5 - 1.")
    tutored = Attempt.objects.create(student=student, problem=problem, mode="tutor")
    client.force_login(student)
    response = client.post(
        reverse("tutoring:attempt_hint", args=[tutored.pk]), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 422
    assert "the most the site allows (2)" in response.content.decode()


def test_the_quota_counted_by_the_enqueue_is_the_one_read_afterwards(attempt, settings):
    # The page that answers the click shows `quota_after` instead of counting again.
    settings.GENERATION_QUOTA_PER_HOUR = 5
    used(attempt, 2, ago=timedelta(minutes=10))
    used(attempt, 1, ago=timedelta(hours=3))
    generation = generation_enqueue(attempt=attempt)
    assert generation.quota_after == generation_quota(user=attempt.student)
    assert (generation.quota_after.hour.used, generation.quota_after.day.used) == (3, 4)
    generation_enqueue(attempt=attempt)  # the fourth this hour
    generation = generation_enqueue(attempt=attempt)  # the fifth fills the window
    assert generation.quota_after is None  # when it frees up is read again, with its query
    assert generation_quota(user=attempt.student).hour.frees_at is not None


def test_a_refusal_by_the_quota_says_when_to_retry_in_retry_after(
    client, student, attempt, settings
):
    # The own-answer limits sent Retry-After and the generation quota did not, though both know
    # when the next request fits: the shared refusal (webapp.core.http.refused) now carries it.
    settings.GENERATION_QUOTA_PER_HOUR = 2
    used(attempt, 2)  # a minute ago: the hour frees in 59 minutes
    client.force_login(student)
    ask = client.post(
        reverse("tutoring:attempt_create"), {"statement": "Compute 9 * 9.", "mode": "solve"}
    )
    tutored = Attempt.objects.create(student=student, problem=attempt.problem, mode="tutor")
    hint = client.post(reverse("tutoring:attempt_hint", args=[tutored.pk]), HTTP_HX_REQUEST="true")
    for response in (ask, hint):
        assert response.status_code == 422
        assert 58 * 60 <= int(response["Retry-After"]) <= 59 * 60
