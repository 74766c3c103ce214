"""The WebSocket a student's page opens to watch one generation: `/ws/generations/<id>/`.

A thin consumer: it authenticates from `scope["user"]` (anonymous: close 4401; not the attempt's
student nor an admin: close 4403), joins the generation's group *before* reading what was generated
so far, sends that snapshot, then forwards the worker's events by type (`generation_<type>`
handlers). Deltas numbered at or below the snapshot's `seq` are dropped: they are already in it.
A delta that skips a number, or a `done` whose `seq` is past the last delta forwarded, means a
message was lost between the worker and this socket (the channel layer drops messages silently
when a process's queue is over capacity): the consumer then sends a fresh snapshot (replay buffer,
or the stored row once finished) before going on, so the page can always rebuild the stored text.
The client may send `{"type": "cancel"}`, which stops the generation inside the engine.
"""

import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from webapp.core.errors import ServiceError
from webapp.tutoring import events
from webapp.tutoring.generation_selectors import (
    generation_get_for_viewer,
    generation_replay_events,
)
from webapp.tutoring.generation_services import generation_cancel
from worker.protocol import generation_group_name

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


@database_sync_to_async
def _viewable_generation(generation_id: int, user):
    return generation_get_for_viewer(generation_id=generation_id, user=user)


@database_sync_to_async
def _replay_events(generation_id: int) -> list[dict]:
    return generation_replay_events(generation_id=generation_id)


@database_sync_to_async
def _cancel(generation, user) -> None:
    generation_cancel(generation=generation, user=user)


class GenerationConsumer(AsyncJsonWebsocketConsumer):
    group_name: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Accept first so the browser sees the close code, not a failed handshake.
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        generation_id = int(self.scope["url_route"]["kwargs"]["generation_id"])
        self.generation = await _viewable_generation(generation_id, user)
        if self.generation is None:
            await self.accept()
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.last_seq = 0
        self.finished = False
        self.group_name = generation_group_name(generation_id)
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()
        for event in await _replay_events(generation_id):
            await self._forward(event)

    async def disconnect(self, code: int) -> None:
        if self.group_name is not None:
            await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        if not isinstance(content, dict) or content.get("type") != "cancel":
            await self.send_json(
                events.error(code="unknown_message", message="Only a stop request is understood.")
            )
            return
        try:
            await _cancel(self.generation, self.scope["user"])
        except ServiceError as error:
            await self.send_json(events.error(code=error.code, message=error.message))

    async def _forward(self, event: dict) -> None:
        kind = event["type"]
        if kind == "snapshot":
            if event["seq"] < self.last_seq:
                return  # an older picture than the one this client already has
            self.last_seq = event["seq"]
        elif kind == "delta":
            if event["seq"] <= self.last_seq:
                return  # already part of the snapshot this client received
            if event["seq"] > self.last_seq + 1:
                # The worker writes the replay buffer before it sends a delta, so the buffer
                # already holds this one and every delta that was lost before it.
                await self._resync(at_least=event["seq"])
                return
            self.last_seq = event["seq"]
        elif kind == "done":
            if self.finished:
                return  # the snapshot of a finished row already ended with `done`
            if (event.get("seq") or 0) > self.last_seq:
                # The row is stored before `done` is sent: it has everything that was lost.
                await self._resync(at_least=event["seq"])
            self.finished = True
        await self.send_json(event)

    async def _resync(self, *, at_least: int) -> None:
        """Send the snapshot a reconnecting client would get, numbered at least `at_least`."""
        replay = await _replay_events(self.generation.pk)
        snapshot = dict(replay[0], seq=max(replay[0]["seq"], at_least))
        logger.warning(
            "generation %s: a message was lost before seq %s (this socket had %s); resent a "
            "snapshot",
            self.generation.pk,
            at_least,
            self.last_seq,
        )
        self.last_seq = snapshot["seq"]
        await self.send_json(snapshot)

    # Channel-layer handlers: "generation.<type>" messages from the worker and the services.
    async def generation_delta(self, message: dict) -> None:
        await self._forward(message["event"])

    async def generation_snapshot(self, message: dict) -> None:
        await self._forward(message["event"])

    async def generation_status(self, message: dict) -> None:
        if not self.finished:
            await self._forward(message["event"])

    async def generation_done(self, message: dict) -> None:
        await self._forward(message["event"])

    async def generation_error(self, message: dict) -> None:
        await self._forward(message["event"])
