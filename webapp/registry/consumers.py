"""The live feed of one training job: `/ws/training-jobs/<id>/`, site admins only.

On connect the consumer joins the job's group first and then sends a snapshot (metrics so far,
recent samples, log tail, status), so no event is lost between the two; the page de-duplicates by
step. After that it forwards every event the training task sends to the group (events.py), one
handler per event `type`. Anonymous sockets are closed with CloseCode.UNAUTHENTICATED (4401), other
roles with FORBIDDEN (4403), an unknown job with NOT_FOUND (4404).
"""

from __future__ import annotations

from typing import Any

from webapp.core.params import MAX_ID
from webapp.core.roles import user_has_role
from webapp.core.websocket import CloseCode, JsonConsumer, database_call, signed_in_user
from webapp.registry.events import snapshot_event, training_job_group_name
from webapp.registry.selectors import (
    training_job_get,
    training_job_metric_rows,
    training_job_recent_samples,
)
from webapp.registry.training_jobs.ranks import rank_rows


@database_call
def _snapshot(job_id: int) -> dict | None:
    job = training_job_get(job_id=job_id)
    if job is None:
        return None
    return snapshot_event(
        job=job,
        metrics=training_job_metric_rows(job=job),
        samples=training_job_recent_samples(job=job),
        ranks=rank_rows(job),
    )


class TrainingJobConsumer(JsonConsumer):
    async def connect(self) -> None:
        # Accept, then check, then close with a named code (webapp.core.websocket).
        await self.accept()
        user = await signed_in_user(self.scope)
        if user is None:
            await self.close(code=CloseCode.UNAUTHENTICATED)
            return
        if not user_has_role(user, "admin"):
            await self.close(code=CloseCode.FORBIDDEN)
            return
        job_id = int(self.scope["url_route"]["kwargs"]["job_id"])
        if job_id > MAX_ID:
            # No job has an id past bigint, and a longer id makes a group name Channels refuses
            # (over 100 characters): the consumer crashed instead of closing with 4404.
            await self.close(code=CloseCode.NOT_FOUND)
            return
        self.group_name = training_job_group_name(job_id)
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        snapshot = await _snapshot(job_id)
        if snapshot is None:
            await self.close(code=CloseCode.NOT_FOUND)
            return
        await self.send_json(snapshot)

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group_name"):
            await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # The feed is one-way; cancel goes through the page's POST (a service, with CSRF).
        return

    async def _forward(self, event: dict) -> None:
        await self.send_json(event)

    status = _forward
    metric = _forward
    samples = _forward
    log = _forward
    checkpoint = _forward
    resumed = _forward
    ranks = _forward
