"""Every WebSocket route of the site opens the same way: the handshake is accepted, then a socket
that may not watch is closed with a named code (webapp.core.websocket), so the page learns why."""

import re

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from webapp.accounts.services import user_create
from webapp.core.websocket import MAX_CLIENT_MESSAGE_CHARS, CloseCode
from webapp.routing import app_websocket_urlpatterns, websocket_urlpatterns


def _example_paths() -> list[str]:
    # `ws/generations/<int:generation_id>/` -> `/ws/generations/1/`
    return ["/" + re.sub(r"<[^>]+>", "1", str(p.pattern)) for p in app_websocket_urlpatterns]


def test_the_routes_of_every_app_are_covered():
    assert {path.split("/")[2] for path in _example_paths()} == {
        "echo",
        "generations",
        "training-jobs",
    }


@pytest.mark.parametrize("path", _example_paths())
async def test_an_anonymous_socket_is_accepted_then_closed_as_unauthenticated(path):
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    communicator.scope["user"] = AnonymousUser()
    connected, _ = await communicator.connect(timeout=5)
    assert connected, f"{path}: the handshake was refused instead of accepted"
    assert await communicator.receive_output(timeout=5) == {
        "type": "websocket.close",
        "code": CloseCode.UNAUTHENTICATED,
    }
    await communicator.wait()


@pytest.mark.parametrize(
    "path", ["/ws/nope/", "/ws/generations/abc/", "/ws/training-jobs/-1/", "/", "/ws/echo/x/"]
)
async def test_a_path_no_app_routes_is_opened_then_closed_as_not_found(path, transactional_db):
    """Channels' router raised ValueError for these: a 500 on the handshake and a logged error."""
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    communicator.scope["user"] = AnonymousUser()
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    assert await communicator.receive_output(timeout=5) == {
        "type": "websocket.close",
        "code": CloseCode.NOT_FOUND,
    }
    await communicator.send_to(text_data="{}")  # ignored: nothing to act on
    assert await communicator.receive_nothing(timeout=0.1)
    await communicator.wait()


@pytest.mark.parametrize(
    "frame",
    [
        {"text_data": "not json"},
        {"text_data": "[" * 100_000},
        {"text_data": "[1]"},
        {"text_data": "x" * (MAX_CLIENT_MESSAGE_CHARS + 1)},
        {"bytes_data": b"\x00\x01"},
    ],
    ids=["not-json", "deep", "not-an-object", "too-long", "binary"],
)
async def test_a_message_the_echo_socket_cannot_read_is_answered_and_the_socket_stays_open(
    frame, transactional_db
):
    """The echo socket raised on each of these (the socket dropped with 1011); every consumer of
    the site reads messages through webapp.core.websocket.JsonConsumer."""
    user = await sync_to_async(user_create)(username="e", password="x", validate=False)
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/echo/")
    communicator.scope["user"] = user
    assert (await communicator.connect(timeout=5))[0]
    await communicator.send_to(**frame)
    error = await communicator.receive_json_from(timeout=5)
    assert (error["type"], error["code"]) == ("error", "unknown_message")
    await communicator.send_json_to({"text": "still here"})
    assert await communicator.receive_json_from(timeout=5) == {"type": "echo", "text": "still here"}
    await communicator.disconnect()
