"""Under ASGI the site's middleware runs synchronously, in the request's thread: no middleware
hook hops to the event loop and back (webapp/core/synchronous_chain.py)."""

from unittest import mock

from asgiref.sync import AsyncToSync, SyncToAsync, iscoroutinefunction
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.test import AsyncClient, override_settings


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


async def _served_with_thread_hops(middleware: list[str]):
    """A page request through `middleware` under ASGI, and how many times it went from the event
    loop to a thread (asgiref's `SyncToAsync` calls)."""
    hops = 0
    call = SyncToAsync.__call__

    async def counted(self, *args, **kwargs):
        nonlocal hops
        hops += 1
        return await call(self, *args, **kwargs)

    with (
        override_settings(MIDDLEWARE=middleware, ALLOWED_HOSTS=["testserver"]),
        mock.patch.object(SyncToAsync, "__call__", counted),
    ):
        response = await AsyncClient().get("/accounts/login/")
    return response, hops


async def test_a_page_is_served_with_fewer_thread_hops_than_without_the_marker(db):
    served = list(settings.MIDDLEWARE)
    response, hops = await _served_with_thread_hops(served)
    assert response.status_code == 200
    assert response["Content-Security-Policy"]  # the chain's outer middleware ran
    # Without the marker every middleware after the last synchronous-only one hops per hook.
    _, hops_without_marker = await _served_with_thread_hops(served[:-1])
    assert hops < hops_without_marker
