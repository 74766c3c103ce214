"""Real round trips through Redis: the Channels layer across processes, and Celery with a real worker.

The site runs in its own uvicorn process (`live_site`); the test process is a second process that
talks to the same Redis. Nothing here is mocked.
"""

import json
import os

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from webapp.accounts.services import user_create
from webapp.core.websocket import CloseCode

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _session_cookie(client, user) -> str:
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def _open(live_site, path: str, cookie: str | None = None):
    headers = {"Cookie": cookie} if cookie else {}
    return connect(
        f"{live_site.ws_url}{path}",
        additional_headers=headers,
        origin=live_site.url,
        open_timeout=10,
    )


def test_websocket_message_round_trips_through_redis(transactional_db, live_site, client):
    user = user_create(username="echo-user", password="x", validate=False)
    cookie = _session_cookie(client, user)
    with (
        _open(live_site, "/ws/echo/", cookie) as first,
        _open(live_site, "/ws/echo/", cookie) as second,
    ):
        first.send(json.dumps({"text": "hello through redis"}))
        # Both sockets are in the user's group: the message went out to Redis and came back to each.
        for socket in (first, second):
            assert json.loads(socket.recv(timeout=10)) == {
                "type": "echo",
                "text": "hello through redis",
            }


def test_group_send_from_another_process_reaches_the_browser_socket(
    transactional_db, live_site, client
):
    user = user_create(username="echo-user-2", password="x", validate=False)
    cookie = _session_cookie(client, user)
    with _open(live_site, "/ws/echo/", cookie) as socket:
        # The test process is not the server process: only Redis connects the two.
        async_to_sync(get_channel_layer().group_send)(
            f"echo.{user.pk}", {"type": "echo", "text": f"from pid {os.getpid()}"}
        )
        assert json.loads(socket.recv(timeout=10))["text"] == f"from pid {os.getpid()}"


def test_anonymous_websocket_is_accepted_then_closed_with_4401(transactional_db, live_site):
    # The handshake succeeds (webapp.core.websocket), so the browser learns why it was refused.
    with _open(live_site, "/ws/echo/") as socket:
        with pytest.raises(ConnectionClosed) as caught:
            socket.recv(timeout=5)
    assert caught.value.rcvd is not None and caught.value.rcvd.code == CloseCode.UNAUTHENTICATED


def test_celery_task_runs_in_a_real_worker_process(transactional_db, celery_worker_process):
    from webapp.core.tasks import worker_self_check

    result = worker_self_check.delay().get(timeout=60)
    assert result["database"] == "ok"
    assert result["pid"] != os.getpid()
    assert celery_worker_process.process.poll() is None


def test_healthz_reports_each_part(transactional_db, live_site, celery_worker_process):
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"{live_site.url}/healthz",
        headers={"Authorization": f"Bearer {os.environ['HEALTHZ_TOKEN']}"},
    )
    try:
        response = urllib.request.urlopen(request, timeout=15)
        body = json.loads(response.read())
    except urllib.error.HTTPError as error:  # 503 while no inference worker is up
        body = json.loads(error.read())
    checks = body["checks"]
    assert checks["database"]["state"] == "ok"
    assert checks["redis"]["state"] == "ok"
    assert checks["celery"]["state"] == "ok"
    assert checks["celery"]["workers"]
    assert checks["inference"]["state"] in {"ok", "down"}
    assert "queue" in checks["inference"]


def test_healthz_is_readable_in_a_browser(transactional_db, live_site):
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"{live_site.url}/healthz",
        headers={
            "Accept": "text/html",
            "Authorization": f"Bearer {os.environ['HEALTHZ_TOKEN']}",
        },
    )
    try:
        html = urllib.request.urlopen(request, timeout=15).read().decode()
    except urllib.error.HTTPError as error:
        html = error.read().decode()
    assert "System health" in html
    assert "database" in html
