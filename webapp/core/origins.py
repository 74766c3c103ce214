"""The WebSocket origin check: a socket is opened only from a page of this site, port included.

Channels' AllowedHostsOriginValidator compares host names only, so a page served on another port of
the same host (another program on the machine) could open the site's sockets with the student's
cookies. `SameOriginValidator` accepts an Origin only when its scheme, host and port equal the
site's own origin for this request (the Host header, itself checked against ALLOWED_HOSTS, with
http for ws and https for wss) or one of CSRF_TRUSTED_ORIGINS (the origins a proxy in front
serves). Default ports are made explicit before comparing. A missing Origin is refused.
"""

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}
PAGE_SCHEME = {"ws": "http", "wss": "https"}


def normalised_origin(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin such as "http://127.0.0.1:8000", or None if unreadable."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def site_origins(scope: dict) -> set[tuple[str, str, int]]:
    """The origins this request's pages have: its own Host (if allowed) and the trusted ones."""
    origins = set()
    host = _header(scope, b"host")
    if host:
        domain, _ = split_domain_port(host)
        if domain and validate_host(domain, settings.ALLOWED_HOSTS):
            scheme = PAGE_SCHEME.get(scope.get("scheme", "ws"), "http")
            own = normalised_origin(f"{scheme}://{host}")
            if own:
                origins.add(own)
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        parsed = normalised_origin(trusted)
        if parsed:
            origins.add(parsed)
    return origins


def origin_allowed(scope: dict) -> bool:
    origin = _header(scope, b"origin")
    parsed = normalised_origin(origin) if origin else None
    return parsed is not None and parsed in site_origins(scope)


class SameOriginValidator:
    """ASGI middleware: WebSocket handshakes from another origin (or none) are denied."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not origin_allowed(scope):
            denier = WebsocketDenier()
            return await denier(scope, receive, send)
        return await self.application(scope, receive, send)
