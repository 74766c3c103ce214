"""The client address of the request being served, for audit rows written deep in a service.

`AuditRequestMiddleware` sets it for the duration of each request (a context variable, so two
requests served at once never see each other's); outside a request (Celery, management commands)
there is none. The address is the connection's own (`REMOTE_ADDR`): behind a reverse proxy that
is the proxy's, unless the proxy's server sets REMOTE_ADDR from the client (uvicorn does with
`--proxy-headers` and `FORWARDED_ALLOW_IPS`).
"""

from collections.abc import Callable
from contextvars import ContextVar
from ipaddress import ip_address

from django.http import HttpRequest, HttpResponse

_client_ip: ContextVar[str | None] = ContextVar("audit_client_ip", default=None)


def valid_ip(raw: object) -> str | None:
    """`raw` as a normalised IP address, or None when it is not one."""
    try:
        return str(ip_address(str(raw or "").strip()))
    except ValueError:
        return None


def request_ip(request: HttpRequest | None) -> str | None:
    """The request's client address if it is a valid IP address, else None."""
    if request is None:
        return None
    return valid_ip((getattr(request, "META", None) or {}).get("REMOTE_ADDR"))


def current_ip() -> str | None:
    return _client_ip.get()


class AuditRequestMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _client_ip.set(request_ip(request))
        try:
            return self.get_response(request)
        finally:
            _client_ip.reset(token)
