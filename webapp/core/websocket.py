"""The one way a consumer of the site opens and refuses a WebSocket.

Every consumer's `connect` accepts the handshake first (`await self.accept()`), then checks who is
asking (`signed_in_user`, then its own rule), and refuses with `await self.close(code=CloseCode.…)`. A handshake rejected
before `accept()` reaches the page only as a bare failure (1006, no code), so the page could not
tell "sign in again" from "the server is down" and would retry for ever; with the code it can stop
and say why (webapp/static/js: solution-stream.js, dashboard-job.js treat 4401/4403/4404 as final).
Nothing is sent before the check passes.
"""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    """Close codes the site's sockets end with. 4000-4999 is the range RFC 6455 leaves to
    applications; ours mirror the HTTP status a page would have got."""

    UNAUTHENTICATED = 4401  # not signed in (the session expired): sign in again
    FORBIDDEN = 4403  # signed in, but not allowed to watch this
    NOT_FOUND = 4404  # the thing to watch does not exist
    SERVER_ERROR = 1011  # RFC 6455 "internal error": something broke; the page may reconnect


def signed_in_user(scope: dict):
    """The scope's user when signed in, else None."""
    user = scope.get("user")
    if user is None or not user.is_authenticated:
        return None
    return user
