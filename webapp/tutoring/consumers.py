"""The WebSocket a student's page opens to watch one generation: `/ws/generations/<id>/`.

A thin consumer: it authenticates from `scope["user"]` (anonymous: close 4401; not the attempt's
student nor an admin: close 4403), sends what was generated so far (one `snapshot`, then `done` or
the queue position / `running`), then follows the generation's event log (a Redis Stream, see
inference_contract/event_log.py) from the entry that snapshot ended at, with a blocking `XREAD`, and
forwards each event until `done`. The snapshot and the live events come from the same log, so a
page misses nothing and sees nothing twice; deltas numbered at or below what the page already has
are dropped all the same. Should a delta still skip a number, or `done` name a later one (an entry
lost, e.g. to an expired log), the consumer sends a fresh snapshot (the stored row once finished)
before going on, so the page can always rebuild the stored text.
The client may send `{"type": "cancel"}`, which stops the generation inside the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any, NamedTuple

from django.db import transaction

from inference_contract.event_log import decode
from inference_contract.protocol import event_log_key
from webapp.core.errors import ServiceError
from webapp.core.redis_client import async_redis_client
from webapp.core.websocket import (
    CloseCode,
    JsonConsumer,
    database_call,
    may_be_signed_in,
    session_user,
)
from webapp.tutoring import events
from webapp.tutoring.generation_selectors import generation_get_for_viewer, generation_replay
from webapp.tutoring.generation_services import generation_cancel
from webapp.tutoring.models import Generation

logger = logging.getLogger(__name__)

# A blocking read returns at least this often, so a socket whose page went away is noticed.
FOLLOW_BLOCK_MS = 15_000
# No channel layer: the consumer follows the event log itself and no one sends to it. With the
# default layer every socket registered a channel and ran a blocking read (BZPOPMIN) that was
# cancelled when it closed; redis-py drops a connection whose command is cancelled mid-flight, so
# each generation's socket cost a new Redis connection (HELLO, SELECT) and five commands.
# `get_channel_layer` returns None for an alias that is not configured.
NO_CHANNEL_LAYER = "none: this consumer does not use a channel layer"


class _Opening(NamedTuple):
    refusal: CloseCode | None  # why the socket closes at once, or None
    generation: Generation | None = None
    events: Sequence[dict] = ()
    log_id: str = ""


@database_call
def _open(generation_id: int, scope: dict) -> _Opening:
    """Who is asking, whether they may watch, and what to send first: the session, the user, the
    generation and its replay in one transaction, so opening a socket costs one commit."""
    with transaction.atomic():
        user = session_user(scope)
        if user is None:
            return _Opening(CloseCode.UNAUTHENTICATED)
        generation = generation_get_for_viewer(generation_id=generation_id, user=user)
        if generation is None:
            # Not the student's, or no such generation: the same answer, so ids reveal nothing.
            return _Opening(CloseCode.FORBIDDEN)
        opening, last_id = generation_replay(generation_id=generation_id)
    return _Opening(None, generation, opening, last_id)


@database_call
def _replay(generation_id: int) -> tuple[list[dict], str]:
    return generation_replay(generation_id=generation_id)


@database_call
def _cancel(generation, user) -> None:
    generation_cancel(generation=generation, user=user)


class GenerationConsumer(JsonConsumer):
    channel_layer_alias = NO_CHANNEL_LAYER
    follower: asyncio.Task | None = None
    generation: Generation | None = None  # set once the opening's checks pass

    async def connect(self) -> None:
        # Accept, then check, then close with a named code (webapp.core.websocket).
        await self.accept()
        if not may_be_signed_in(self.scope):
            await self.close(code=CloseCode.UNAUTHENTICATED)
            return
        generation_id = int(self.scope["url_route"]["kwargs"]["generation_id"])
        refusal, self.generation, opening, last_id = await _open(generation_id, self.scope)
        if refusal is not None:
            await self.close(code=refusal)
            return
        self.last_seq = 0
        self.finished = False
        for event in opening:
            await self._forward(event)
        if not self.finished:
            self.follower = asyncio.create_task(self._follow(last_id))

    async def disconnect(self, code: int) -> None:
        if self.follower is not None:
            self.follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.follower

    async def _follow(self, last_id: str) -> None:
        """Forward the log's entries after `last_id` until `done`."""
        key = event_log_key(self.generation.pk)
        client = async_redis_client()
        try:
            while not self.finished:
                response = await client.xread({key: last_id}, block=FOLLOW_BLOCK_MS, count=100)
                for _key, entries in response:
                    for entry_id, entry_events in decode(entries):
                        last_id = entry_id
                        for event in entry_events:
                            await self._forward(event)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - Redis gone past the retries: the page reconnects
            logger.warning("following generation %s failed", self.generation.pk, exc_info=True)
            await self.close(code=CloseCode.SERVER_ERROR)

    def accepts_messages(self) -> bool:
        # None until the socket's opening has passed the checks, and for a refused socket: a
        # message that arrives before its close is ignored (it raised AttributeError on None).
        return self.generation is not None

    async def refuse_message(self) -> None:
        await self.send_json(
            events.error(code="unknown_message", message="Only a stop request is understood.")
        )

    async def receive_json(self, content: object, **kwargs: Any) -> None:
        if not isinstance(content, dict) or content.get("type") != "cancel":
            await self.refuse_message()
            return
        try:
            await _cancel(self.generation, self.scope["user"])
        except ServiceError as error:
            await self.send_json(events.error(code=error.code, message=error.message))

    async def _forward(self, event: dict) -> None:
        kind = event["type"]
        if self.finished:
            return  # nothing follows `done`
        if kind == "snapshot":
            if event["seq"] < self.last_seq:
                return  # an older picture than the one this client already has
            self.last_seq = event["seq"]
        elif kind == "delta":
            if event["seq"] <= self.last_seq:
                return  # already part of the snapshot this client received
            if event["seq"] > self.last_seq + 1:
                await self._resync(at_least=event["seq"])
                return
            self.last_seq = event["seq"]
        elif kind == "done":
            if (event.get("seq") or 0) > self.last_seq:
                # The row is stored before `done` is sent: it has everything that was lost.
                await self._resync(at_least=event["seq"])
            self.finished = True
        await self.send_json(event)

    async def _resync(self, *, at_least: int) -> None:
        """Send the snapshot a reconnecting client would get, numbered at least `at_least`."""
        opening, _ = await _replay(self.generation.pk)
        snapshot = dict(opening[0], seq=max(opening[0]["seq"], at_least))
        logger.warning(
            "generation %s: a message was lost before seq %s (this socket had %s); resent a "
            "snapshot",
            self.generation.pk,
            at_least,
            self.last_seq,
        )
        self.last_seq = snapshot["seq"]
        await self.send_json(snapshot)
