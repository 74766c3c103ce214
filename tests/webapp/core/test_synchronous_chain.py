"""Under ASGI the site's middleware runs synchronously, in the request's thread: no middleware
hook hops to the event loop and back (webapp/core/synchronous_chain.py)."""

from asgiref.sync import AsyncToSync, SyncToAsync, iscoroutinefunction
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.test import AsyncClient


def _chain(handler: ASGIHandler) -> list[object]:
    """The chain from the outside in: adapters, Django's exception wrappers' middleware
    instances and, innermost, Django's own handler."""
    nodes, node = [], handler._middleware_chain
    while node is not None:
        nodes.append(node)
        if isinstance(node, SyncToAsync):
            node = node.func
        elif isinstance(node, AsyncToSync):
            node = node.awaitable
        elif hasattr(node, "__wrapped__"):
            node = node.__wrapped__
        else:
            node = getattr(node, "get_response", None)
    return nodes


def test_every_middleware_runs_synchronously_under_asgi():
    nodes = _chain(ASGIHandler())
    middleware = [n for n in nodes if type(n).__module__ + "." + type(n).__qualname__ in
                  settings.MIDDLEWARE]  # fmt: skip
    assert [f"{type(m).__module__}.{type(m).__qualname__}" for m in middleware] == list(
        settings.MIDDLEWARE
    )
    # (async mode is what Django marks with asgiref's coroutine marker: the hooks then hop)
    assert not [m for m in middleware if iscoroutinefunction(m)]
    # One way into the chain's thread, one way back out to Django's inner handler: no hop per
    # middleware hook.
    assert sum(isinstance(n, SyncToAsync) for n in nodes) == 1
    assert sum(isinstance(n, AsyncToSync) for n in nodes) == 1
    assert isinstance(nodes[0], SyncToAsync)


async def test_a_page_is_served_through_the_synchronous_chain(db):
    response = await AsyncClient().get("/accounts/login/")
    assert response.status_code == 200
    assert response["Content-Security-Policy"]  # the chain's outer middleware ran
