"""The smaller findings of issue 12: what anonymous /healthz reveals, the WebSocket origin check
with its port, the Content-Security-Policy header, and the request-body cap before reading."""

import json

import pytest
from channels.testing import WebsocketCommunicator
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from inference_contract.worker_registry import heartbeat_forget, heartbeat_queue
from webapp.asgi import application
from webapp.core.body_limit import RequestBodyLimit
from webapp.core.redis_client import redis_client

# --- /healthz ------------------------------------------------------------------------------------

SECRET_BEAT = {
    "worker_id": "gpu-box-4242",
    "state": "serving",
    "pid": 4242,
    "host": "gpu-box.internal",
    "model_path": "/srv/models/ring-lite-secret",
}


@pytest.fixture
def planted_heartbeat():
    with redis_client().pipeline() as pipe:
        heartbeat_queue(pipe, "gpu-box-4242", SECRET_BEAT, 60)
        pipe.execute()
    yield
    with redis_client().pipeline() as pipe:
        heartbeat_forget(pipe, "gpu-box-4242")
        pipe.execute()


@pytest.mark.django_db
@pytest.mark.parametrize("accept", ["application/json", "text/html"])
def test_anonymous_healthz_shows_only_the_overall_state(client, planted_heartbeat, accept):
    response = client.get("/healthz", HTTP_ACCEPT=accept)
    body = response.content.decode()
    for secret in ("4242", "gpu-box", "/srv/models", "pid", "latency"):
        assert secret not in body
    if accept == "application/json":
        assert set(json.loads(body)) == {"state"}
        # Anonymous callers share one recent answer: a flood of them costs one check.
        with CaptureQueriesContext(connection) as queries:
            client.get("/healthz")
        assert not [q for q in queries.captured_queries if q["sql"] == "SELECT 1"]
    else:
        assert "System health" in body


@pytest.mark.django_db
def test_healthz_details_for_the_token_and_for_admins(client, planted_heartbeat, settings, admin):
    settings.HEALTHZ_TOKEN = "s3cret-token"
    wrong = client.get("/healthz", HTTP_AUTHORIZATION="Bearer not-it")
    assert set(wrong.json()) == {"state"}
    right = client.get("/healthz", HTTP_AUTHORIZATION="Bearer s3cret-token").json()
    assert right["checks"]["inference"]["workers"][0]["host"] == "gpu-box.internal"

    settings.HEALTHZ_TOKEN = ""  # no token configured: no bearer is accepted, admins still are
    assert set(client.get("/healthz", HTTP_AUTHORIZATION="Bearer ").json()) == {"state"}
    client.force_login(admin)
    assert "checks" in client.get("/healthz").json()


# --- WebSocket origins ---------------------------------------------------------------------------


async def handshake(origin: str | None, host: str = "127.0.0.1:8000", path="/ws/echo/") -> bool:
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect()
    await communicator.disconnect()
    return connected


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_websocket_from_another_port_of_the_same_host_is_refused():
    # Anonymous: the echo consumer accepts, then closes; the validator refuses before it.
    path = "/ws/generations/1/"
    assert await handshake("http://127.0.0.1:8000", path=path)
    assert not await handshake("http://127.0.0.1:9999", path=path)
    assert not await handshake("http://localhost:8000", path=path)
    assert not await handshake("https://127.0.0.1:8000", path=path)
    assert not await handshake("http://evil.example:8000", path=path)
    assert not await handshake(None, path=path)
    assert not await handshake("null", path=path)
    # A Host outside ALLOWED_HOSTS is no origin of the site, whatever the Origin says.
    assert not await handshake("http://evil.example:8000", host="evil.example:8000", path=path)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_trusted_origins_of_a_proxy_are_accepted_with_their_port(settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://tutor.example.org"]
    path = "/ws/generations/1/"
    assert await handshake("https://tutor.example.org", path=path)
    assert await handshake("https://tutor.example.org:443", path=path)
    assert not await handshake("https://tutor.example.org:8443", path=path)


# --- Content-Security-Policy -----------------------------------------------------------------------


@pytest.mark.django_db
def test_pages_carry_a_strict_content_security_policy(client):
    response = client.get(reverse("accounts:login"), HTTP_HOST="127.0.0.1:8000")
    policy = response["Content-Security-Policy"]
    directives = dict(
        (part.split()[0], part.split()[1:]) for part in policy.split(";") if part.strip()
    )
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert directives["font-src"] == ["'self'"]
    assert directives["default-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert "ws://127.0.0.1:8000" in directives["connect-src"]
    assert "wss://127.0.0.1:8000" in directives["connect-src"]
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy


# --- the request-body cap ------------------------------------------------------------------------


class Inner:
    """The wrapped application: records whether it ran and reads the whole body as Django does."""

    def __init__(self):
        self.called = False
        self.body = b""

    async def __call__(self, scope, receive, send):
        self.called = True
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            self.body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def run(app, headers, chunks):
    reads = 0
    sent = []

    async def receive():
        nonlocal reads
        reads += 1
        if reads <= len(chunks):
            return {
                "type": "http.request",
                "body": chunks[reads - 1],
                "more_body": reads < len(chunks),
            }
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/teach/sets/upload/", "headers": headers}
    await app(scope, receive, send)
    return reads, sent


@pytest.mark.asyncio
async def test_a_declared_oversized_upload_is_refused_before_its_body_is_read(settings):
    settings.REQUEST_BODY_MAX_BYTES = 1000
    inner = Inner()
    reads, sent = await run(
        RequestBodyLimit(inner), [(b"content-length", b"50000000")], [b"x" * 1000] * 5
    )
    assert reads == 0 and not inner.called
    assert sent[0]["status"] == 413
    page = sent[1]["body"].decode()
    assert "too large" in page and "none of\n      it was read" in page


@pytest.mark.asyncio
async def test_an_undeclared_stream_is_cut_off_at_the_cap(settings):
    settings.REQUEST_BODY_MAX_BYTES = 2500
    inner = Inner()
    reads, sent = await run(RequestBodyLimit(inner), [], [b"x" * 1000] * 50)
    assert reads == 3  # stopped at the first chunk past the cap, not after all 50
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [413]


@pytest.mark.asyncio
async def test_a_body_within_the_cap_reaches_the_site(settings):
    settings.REQUEST_BODY_MAX_BYTES = 5000
    inner = Inner()
    reads, sent = await run(
        RequestBodyLimit(inner), [(b"content-length", b"3000")], [b"x" * 1000] * 3
    )
    assert inner.body == b"x" * 3000
    assert sent[0]["status"] == 200
