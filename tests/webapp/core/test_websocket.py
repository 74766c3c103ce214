"""Every WebSocket route of the site opens the same way: the handshake is accepted, then a socket
that may not watch is closed with a named code (webapp.core.websocket), so the page learns why."""

import re

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from webapp.core.websocket import CloseCode
from webapp.routing import websocket_urlpatterns


def _example_paths() -> list[str]:
    # `ws/generations/<int:generation_id>/` -> `/ws/generations/1/`
    return ["/" + re.sub(r"<[^>]+>", "1", str(p.pattern)) for p in websocket_urlpatterns]


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
