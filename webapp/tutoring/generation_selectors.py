"""Reads about generations for the streaming path: who may watch one, and what they see first.

`generation_replay` is what a WebSocket sends on (re)connect: a `snapshot` of everything generated
so far — from the row once the generation is finished, from the generation's event log in Redis
while it runs — followed by the `done` event or the queue position, and the log id to follow from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings

from inference_contract.event_log import read_log
from webapp.core.redis_client import redis_client
from webapp.tutoring import events
from webapp.tutoring.models import Generation, GenerationStatus

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser

    from webapp.accounts.models import User


def generation_visible_to(*, generation: Generation, user: User | AnonymousUser | None) -> bool:
    """The attempt's student and site admins may watch a generation; nobody else."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return user.is_site_admin or generation.attempt.student_id == user.pk


def generation_get_for_viewer(
    *, generation_id: int, user: User | AnonymousUser | None
) -> Generation | None:
    """The generation if `user` may watch it, else None (unknown and forbidden look the same)."""
    generation = Generation.objects.select_related("attempt").filter(pk=generation_id).first()
    if generation is None or not generation_visible_to(generation=generation, user=user):
        return None
    return generation


def generation_queue_position(*, generation: Generation) -> int | None:
    """1 for the next generation a worker will take; None once it is no longer queued."""
    if generation.status != GenerationStatus.QUEUED:
        return None
    ahead = Generation.objects.filter(status=GenerationStatus.QUEUED, pk__lt=generation.pk).count()
    return ahead + 1


def generation_replay(*, generation_id: int) -> tuple[list[events.Event], str]:
    """The events a client receives on (re)connect, snapshot first, and the id of the last log
    entry they include: the socket follows the log from there, so nothing is missed or repeated.

    The row is read before the log: a generation that finishes in between has its `done` in the
    log, and one already finished has its whole text in the row.
    """
    generation = Generation.objects.get(pk=generation_id)
    log = read_log(redis_client(), generation_id)
    if generation.is_finished:
        return [
            events.snapshot(
                seq=log.seq,
                reasoning=generation.reasoning,
                answer=generation.answer,
                status=generation.status,
                model_version=generation.model_version_label,
            ),
            dict(events.done_from_generation(generation), seq=log.seq),
        ], log.last_id
    snapshot = events.snapshot(
        seq=log.seq,
        reasoning=log.reasoning,
        answer=log.answer,
        status=log.status or generation.status,
        model_version=log.model_version or generation.model_version_label,
    )
    if log.done is not None:
        return [snapshot, log.done], log.last_id
    if generation.status == GenerationStatus.QUEUED:
        position = generation_queue_position(generation=generation)
        return [snapshot, events.status_queued(position=position)], log.last_id
    return [snapshot, events.status_running(model_version=snapshot["model_version"])], log.last_id


def generation_replay_events(*, generation_id: int) -> list[events.Event]:
    return generation_replay(generation_id=generation_id)[0]


def generation_limits() -> dict[str, int]:
    """The limits the site enforces before a request reaches the queue."""
    inference = settings.INFERENCE
    return {
        "max_prompt_chars": int(inference["MAX_PROMPT_CHARS"]),
        "max_concurrent_per_user": int(inference["MAX_CONCURRENT_PER_USER"]),
        "max_new_tokens": int(inference["MAX_NEW_TOKENS"]),
    }
