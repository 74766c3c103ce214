"""The one way the site is served: `python -m webapp.serve --host H --port P [uvicorn options]`.

The Procfile, the Dockerfile, docker-compose, the test suite's live site and the benches all start
the site through this module, so an option every deployment needs is set here once:

- `--timeout-keep-alive 75`: uvicorn's default (5 s) closes a student's connection while they read
  an answer, so the next click pays a new connection (and TLS handshake), and a client that sends
  just as the server closes reads a reset (docs/inference-worker.md, "Two workers on one queue":
  the bench's failed requests). Browsers keep idle connections 115-300 s; 75 s outlasts the pause
  between two clicks and stays under the idle timeout of common proxies in front.
- the WebSocket implementation is uvicorn's `auto` choice, the one the tests run against.
"""

from __future__ import annotations

import sys

APPLICATION = "webapp.asgi:application"
KEEP_ALIVE_S = 75
SITE_OPTIONS = ("--timeout-keep-alive", str(KEEP_ALIVE_S))


def uvicorn_args(extra: list[str]) -> list[str]:
    """uvicorn's arguments: the application, the site's options, then the caller's."""
    return [APPLICATION, *SITE_OPTIONS, *extra]


def main(argv: list[str] | None = None) -> None:
    from uvicorn.main import main as uvicorn_command  # the click command (`uvicorn.main` is not)

    uvicorn_command(args=uvicorn_args(sys.argv[1:] if argv is None else argv), prog_name=__name__)


if __name__ == "__main__":
    main()
