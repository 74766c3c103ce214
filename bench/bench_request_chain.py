"""CPU per request through Django's ASGI handler: the site's middleware chain as served (every
middleware synchronous, webapp.core.synchronous_chain innermost) against the chain before it
(the same list without that entry: everything inside the last synchronous-only middleware ran in
async mode, one thread hop per middleware hook), side by side in one run.

    .venv/bin/python bench/bench_request_chain.py [--requests 300] [--rounds 7]

The request is an anonymous GET of the login page (no database: the cost is the handler, the
middleware and the page), driven in-process through `ASGIHandler` as uvicorn drives it, so the
figure is the web server's own CPU for it. Prints milliseconds of process CPU per request for
both chains, each round alternating which goes first, and the median of the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
os.environ.setdefault("SECRET_KEY", "bench-request-chain-" + "x" * 40)

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402
from django.test import override_settings  # noqa: E402

MARKER = "webapp.core.synchronous_chain.SynchronousChainMiddleware"
PATH = "/accounts/login/"


async def get(app: ASGIHandler, path: str) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    body_sent = False
    messages: list[dict] = []

    async def receive() -> dict:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays connected
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        messages.append(message)

    await app(scope, receive, send)
    return messages[0]["status"]


async def cpu_ms_per_request(app: ASGIHandler, requests: int) -> float:
    for _ in range(20):  # warm: templates, URL resolver, thread pool
        assert await get(app, PATH) == 200
    start = time.process_time()
    for _ in range(requests):
        await get(app, PATH)
    return (time.process_time() - start) / requests * 1000


def chain(middleware: list[str]) -> ASGIHandler:
    with override_settings(MIDDLEWARE=middleware, ALLOWED_HOSTS=["localhost"]):
        return ASGIHandler()  # loads the chain now, from the overridden list


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    served = list(settings.MIDDLEWARE)
    assert served[-1] == MARKER, "the served chain ends with the synchronous marker"
    chains = {"served (synchronous)": chain(served), "before (async inside)": chain(served[:-1])}
    results: dict[str, list[float]] = {name: [] for name in chains}
    names = list(chains)
    for round_ in range(args.rounds):
        for name in names if round_ % 2 == 0 else reversed(names):
            with override_settings(ALLOWED_HOSTS=["localhost"]):
                ms = asyncio.run(cpu_ms_per_request(chains[name], args.requests))
            results[name].append(ms)
    print(f"GET {PATH}, {args.requests} requests a round, {args.rounds} rounds, alternating")
    for name, values in results.items():
        rounds = ", ".join(f"{v:.2f}" for v in values)
        print(f"{name:24s} median {statistics.median(values):.2f} ms CPU/request  ({rounds})")
    ratio = statistics.median(results[names[0]]) / statistics.median(results[names[1]])
    print(f"served / before: {ratio:.2f}")


if __name__ == "__main__":
    main()
