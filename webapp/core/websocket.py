"""The one way a consumer of the site opens and refuses a WebSocket, and learns who is asking.

Every consumer's `connect` accepts the handshake first (`await self.accept()`), then checks who is
asking (`await signed_in_user(scope)`, or `session_user(scope)` inside a database call of its own),
then its own rule, and refuses with `await self.close(code=CloseCode.…)`. A handshake rejected
before `accept()` reaches the page only as a bare failure (1006, no code), so the page could not
tell "sign in again" from "the server is down" and would retry for ever; with the code it can stop
and say why (webapp/static/js: solution-stream.js, dashboard-job.js treat 4401/4403/4404 as final).
Nothing is sent before the check passes. A consumer whose messages come through a group may read
who is asking and join the group before it accepts (ChannelLayerEchoConsumer): then a client whose
socket is open is already in the group.

Who is asking comes from the session cookie (`SessionUserMiddleware`, in webapp/asgi.py), read on
first use rather than before the consumer runs: Channels' own AuthMiddleware read the session and
the user in a database call of its own (a thread hop, a pooled connection, two transactions), and
the consumer's own rows then took a second. A consumer that reads rows anyway reads the user in the
same call and transaction (GenerationConsumer: opening a socket costs one commit).

A consumer's database work goes through `database_call`, which runs it in the event loop's thread
pool. Channels' `database_sync_to_async` is thread-sensitive by default, and outside Django's HTTP
handler (which gives each request a thread of its own) that means one thread for the whole
process: every socket's opening queued behind every other's, so a class opening 32 sockets at
once waited for each other's database round trips in turn.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import IntEnum
from typing import Any, ParamSpec, TypeVar

from channels.auth import AuthMiddleware
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib import auth
from django.db import transaction
from django.http import HttpRequest
from django.utils.functional import LazyObject, SimpleLazyObject, empty

P = ParamSpec("P")
R = TypeVar("R")


def database_call(func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """`func` (synchronous database work) as a coroutine function for a consumer: run in the
    loop's thread pool, on a pooled connection it gives back when it returns (see above)."""
    return database_sync_to_async(func, thread_sensitive=False)


class CloseCode(IntEnum):
    """Close codes the site's sockets end with. 4000-4999 is the range RFC 6455 leaves to
    applications; ours mirror the HTTP status a page would have got."""

    UNAUTHENTICATED = 4401  # not signed in (the session expired): sign in again
    FORBIDDEN = 4403  # signed in, but not allowed to watch this
    NOT_FOUND = 4404  # the thing to watch does not exist
    SERVER_ERROR = 1011  # RFC 6455 "internal error": something broke; the page may reconnect


class SessionUserMiddleware(AuthMiddleware):
    """`scope["user"]`: the session's user, read on first use in synchronous code (see above)."""

    def populate_scope(self, scope: dict) -> None:
        if "session" not in scope:
            raise ValueError("SessionUserMiddleware needs Channels' SessionMiddleware above it.")
        if "user" not in scope:
            session = scope["session"]
            scope["user"] = SimpleLazyObject(lambda: _user_of_session(session))

    async def resolve_scope(self, scope: dict) -> None:
        """Nothing up front: the user is read when a consumer first asks."""


def _user_of_session(session) -> object:
    # Django's own reading of a request's user (the session's auth hash, secret-key fallbacks),
    # the session row and the user row in one transaction (or the caller's, when inside one).
    request = HttpRequest()  # what auth.get_user reads: the session
    request.session = session
    with transaction.atomic():
        return auth.get_user(request)


def session_user(scope: dict):
    """The scope's user when signed in, else None; synchronous code only (it may read the
    database: call it inside the consumer's own database call)."""
    user = scope.get("user")
    if user is None or not user.is_authenticated:
        return None
    return user


def _not_read_yet(user: object) -> bool:
    return isinstance(user, LazyObject) and user._wrapped is empty


def may_be_signed_in(scope: dict) -> bool:
    """False when it is known without the database that nobody is signed in (no session cookie,
    or a user already read as anonymous), so such a socket is refused without a database call."""
    user = scope.get("user")
    if user is None:
        return False
    if _not_read_yet(user):
        session = scope.get("session")
        return session is not None and session.session_key is not None
    return user.is_authenticated


async def signed_in_user(scope: dict):
    """The scope's user when signed in, else None, read in one database call if not yet read."""
    if not may_be_signed_in(scope):
        return None
    if _not_read_yet(scope["user"]):
        return await database_call(session_user)(scope)
    return scope["user"]  # read already, and signed in


# What a page sends on the site's sockets is a few dozen characters (`{"type": "cancel"}`).
MAX_CLIENT_MESSAGE_CHARS = 1024


class JsonConsumer(AsyncJsonWebsocketConsumer):
    """The site's consumers' base: whatever a client sends, the socket does not break.

    Channels' `receive` raised on a binary frame (ValueError), on text that is not JSON
    (JSONDecodeError) and on JSON nested deep enough (RecursionError): the exception dropped the
    socket with 1011 and logged a server error, one per message anyone cared to send. Here such a
    message, or one longer than MAX_CLIENT_MESSAGE_CHARS (refused before it is decoded), gets
    `refuse_message` and the socket stays open. Until `accepts_messages` (the opening's checks
    passed) a message is ignored: a socket being refused has nothing to act on.
    """

    def accepts_messages(self) -> bool:
        return True

    async def refuse_message(self) -> None:
        """The answer to a message this socket does not understand."""
        await self.send_json(
            {"type": "error", "code": "unknown_message", "message": "Message not understood."}
        )

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        if not self.accepts_messages():
            return
        if text_data is None or len(text_data) > MAX_CLIENT_MESSAGE_CHARS:
            await self.refuse_message()
            return
        try:
            content = await self.decode_json(text_data)
        except (ValueError, RecursionError):
            await self.refuse_message()
            return
        await self.receive_json(content, **kwargs)


class UnknownRouteConsumer(JsonConsumer):
    """Every WebSocket path no app routes (`/ws/nope/`, `/ws/generations/abc/`): Channels' router
    raised ValueError for it, which the server answered with a 500 on the handshake and a logged
    error. Opened and closed with NOT_FOUND instead, like a route's own unknown object."""

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=CloseCode.NOT_FOUND)

    def accepts_messages(self) -> bool:
        return False
