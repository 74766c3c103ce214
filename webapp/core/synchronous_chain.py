"""Keeps the site's middleware synchronous under ASGI: the last entry of settings.MIDDLEWARE.

Django's ASGI handler ends in an asynchronous handler, and builds the chain from the inside out:
a middleware that can run either way runs the way the handler inside it does. So every entry
after the last synchronous-only one (before this module: AuditRequestMiddleware) ran in async
mode, where `MiddlewareMixin` runs each `process_request` and `process_response` through
`sync_to_async`: a hop from the event loop to a thread and back for each, and the hop back has to
wait its turn on the loop that also carries every open WebSocket. The views are synchronous and
run in a thread anyway, so nothing gained from it.

Being synchronous-only and innermost, this entry turns every middleware outside it synchronous:
the chain then crosses between the loop and the request's thread three times (into the chain,
into Django's inner handler, into the view) instead of once more per async-mode hook:
bench/bench_request_chain.py, 3.80 → 2.78 ms of CPU per request for the login page in-process
(docs/inference-worker.md, "The web tier per request", with what a student sees of it from the
click; tests/webapp/core/test_synchronous_chain.py pins the chain's mode). It does nothing else, so django-axes, the entry before it, still wraps the
view and sees its response first, as it asks.
"""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


class SynchronousChainMiddleware:
    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)
