"""The request-body cap, applied before Django reads a byte of the body.

Django's ASGI handler reads the whole body (to memory, then a temporary file) before any middleware
or view runs, and DATA_UPLOAD_MAX_MEMORY_SIZE does not cover file uploads: an oversized upload used
to be received in full and only then refused. `RequestBodyLimit` wraps the HTTP application: a
declared Content-Length above REQUEST_BODY_MAX_BYTES is answered 413 at once, without reading the
body; a body sent without a length (chunked) is counted as it arrives and cut off with the same 413
the moment it passes the cap.
"""

from csp.utils import build_policy
from django.conf import settings
from django.template.loader import render_to_string

STATUS = 413


def _declared_length(scope: dict) -> int | None:
    for key, value in scope.get("headers", []):
        if key.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def too_large_page(limit: int) -> bytes:
    return render_to_string(
        "core/request_too_large.html", {"limit_mb": f"{limit / 1_048_576:.0f}"}
    ).encode()


async def _refuse(send, limit: int) -> None:
    body = too_large_page(limit)
    await send(
        {
            "type": "http.response.start",
            "status": STATUS,
            "headers": [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"content-security-policy", build_policy().encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestBodyLimit:
    """ASGI middleware: HTTP request bodies above REQUEST_BODY_MAX_BYTES get a 413 page."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.application(scope, receive, send)
        limit = settings.REQUEST_BODY_MAX_BYTES
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            return await _refuse(send, limit)

        received = 0
        refused = False

        async def counting_receive():
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    await _refuse(send, limit)
                    # Django stops reading (RequestAborted) and sends nothing of its own.
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not refused:
                await send(message)

        return await self.application(scope, counting_receive, guarded_send)
