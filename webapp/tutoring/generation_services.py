"""Writes for the streaming path: queue a generation, cancel one.

`generation_enqueue` creates the `queued` row and, on commit, appends its id to the Redis Stream
the inference workers consume; it refuses (ServiceError) a prompt that is too long, a student who
already has the maximum number of generations queued or running, or one whose hourly or daily
quota is used up (webapp.tutoring.quotas), so a limit is a clear message and
never a page that waits forever. `generation_cancel` ends a queued generation at once and asks the
worker running one to abort it inside the engine. (Moving the workers to a new champion is the
registry's: webapp.registry.services.worker_swap_broadcast.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from inference_contract.control import publish_cancel
from inference_contract.request_queue import enqueue_generation
from webapp.core.after_commit import send_on_commit
from webapp.core.errors import ServiceError
from webapp.core.redis_client import redis_client
from webapp.tutoring import events
from webapp.tutoring.generation_selectors import (
    generation_limits,
    generation_visible_to,
)
from webapp.tutoring.models import Attempt, Generation, GenerationKind, GenerationStatus
from webapp.tutoring.quotas import generation_quota

if TYPE_CHECKING:
    from webapp.accounts.models import User


@transaction.atomic
def generation_enqueue(
    *,
    attempt: Attempt,
    kind: str = GenerationKind.SOLUTION,
    hint_index: int | None = None,
    prompt_text: str | None = None,
) -> Generation:
    """Create a queued generation for `attempt` and, on commit, put it on the workers' queue.

    The generation's `quota_after` is the student's quota with it counted
    (`GenerationQuota.after_one_more`: None when it fills a window; read the quota again then)."""
    if kind not in GenerationKind.values:
        raise ServiceError(f"Unknown kind of generation {kind!r}.", code="invalid_kind")
    limits = generation_limits()
    text = prompt_text if prompt_text is not None else attempt.problem.statement
    if not text or not text.strip():
        raise ServiceError("The problem is empty.", code="empty_prompt")
    if len(text) > limits["max_prompt_chars"]:
        raise ServiceError(
            f"This problem is {len(text)} characters long; the tutor reads at most "
            f"{limits['max_prompt_chars']}. Please shorten it.",
            code="prompt_too_long",
        )
    # Lock the student's row so two tabs cannot both pass the check below at the same moment.
    # The locked row is the student for the checks too: `attempt.student` may not be loaded yet
    # (an attempt just created by id), and reading it would be one more query.
    student = get_user_model().objects.select_for_update().filter(pk=attempt.student_id).first()
    if student is None:
        raise ServiceError("That student does not exist.", code="not_found", status=404)
    quota = generation_quota(user=student)  # the concurrency count too, in the same query
    if quota.active >= limits["max_concurrent_per_user"]:
        raise ServiceError(
            f"You already have {quota.active} solutions being written. Wait for one to finish "
            "(or stop one) before asking for another.",
            code="too_many_generations",
            status=429,
        )
    if quota.exhausted is not None:
        raise ServiceError(
            quota.refusal_message(),
            code="quota_exceeded",
            status=429,
            retry_at=quota.exhausted.frees_at,
        )
    generation = Generation.objects.create(attempt=attempt, kind=kind, hint_index=hint_index)
    # What the page that answers the click shows of the quota, without counting again.
    generation.quota_after = quota.after_one_more()
    # Work for the inference workers, like enqueue_on_commit's tasks (not a Celery task, so not
    # that helper): a failure to reach the queue is raised, never only logged.
    transaction.on_commit(
        lambda: enqueue_generation(
            redis_client(),
            generation_id=generation.pk,
            prompt_text=text,
            hint_index=hint_index,
            kind=kind,
        )
    )
    return generation


def generation_cancel(*, generation: Generation, user: User) -> None:
    """Stop a generation: at once when queued; inside the worker's engine when running.

    Finished generations are left as they are (a late click on Stop is not an error).
    """
    if not generation_visible_to(generation=generation, user=user):
        raise ServiceError("You cannot stop this solution.", code="forbidden", status=403)
    with transaction.atomic():
        locked = Generation.objects.select_for_update().get(pk=generation.pk)
        if locked.is_finished:
            return
        locked.cancel_requested = True
        if locked.status == GenerationStatus.QUEUED:
            # No worker has it yet (claiming takes the same row lock): end it here. A worker that
            # reads its queue entry later finds the row finished and only acknowledges it.
            locked.status = GenerationStatus.CANCELLED
            locked.finished_at = timezone.now()
            locked.save(update_fields=["cancel_requested", "status", "finished_at"])
            events.send_on_commit(locked.pk, events.done_from_generation(locked))
        else:
            locked.save(update_fields=["cancel_requested"])
            send_on_commit(
                lambda: publish_cancel(redis_client(), generation_id=locked.pk),
                what=f"cancel of generation {locked.pk}",
            )
    generation.refresh_from_db()
