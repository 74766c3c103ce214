"""A whole class asks at once: 32 (and 64) students post a question against the real site, none
fails, and the site holds a bounded number of PostgreSQL connections while they wait.

The site runs in its own uvicorn process with a small connection pool (DB_POOL_MAX_SIZE=4), so 32
or 64 concurrent requests must queue for connections instead of opening one each (before the pool, every
request thread kept its own and a class exhausted PostgreSQL's 100: HTTP 500 "too many clients").
Each client behaves like the browser: the ask form, the POST, the redirect to the attempt page, the
page's WebSocket and its first events. The connections are counted from pg_stat_activity, matched
to the site process by the client ports of its sockets.
"""

import json
import re
import sys
import threading
import time

import httpx
import psutil
import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from websockets.sync.client import connect

from tests.fixtures.services import (
    database_url_of,
    free_port,
    post_ask,
    start_child,
    wait_until,
)
from webapp.accounts.services import user_create

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.usefixtures("transactional_db"),
    pytest.mark.timeout(600),
]

POOL_SIZE = 4


@pytest.fixture
def pooled_site(child_env, tmp_path):
    port = free_port()
    env = dict(child_env, DB_POOL_MAX_SIZE=str(POOL_SIZE), DB_POOL_MIN_SIZE="1")
    child = start_child(
        [
            sys.executable, "-m", "webapp.serve",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        ],
        env=env,
        log_path=tmp_path / "uvicorn.log",
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_until(
        lambda: httpx.get(f"{url}/accounts/login/", timeout=2).status_code == 200,
        timeout=60,
        child=child,
        what="uvicorn",
    )
    yield url, child
    child.stop()


class ConnectionSampler(threading.Thread):
    """Counts, every 20 ms, the PostgreSQL backends whose client is the given process."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.counts: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(database_url_of(connection.settings_dict), autocommit=True) as db:
            while not self.stop.is_set():
                ports = [
                    c.laddr.port
                    for c in self.process.net_connections(kind="tcp")
                    if c.raddr and c.raddr.port == int(connection.settings_dict["PORT"] or 5432)
                ]
                count = db.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE client_port = ANY(%s)",
                    [ports],
                ).fetchone()[0]
                self.counts.append(count)
                time.sleep(0.02)


def ask_like_a_browser(url: str, cookie: tuple[str, str], number: int, start: threading.Barrier):
    """The form, the POST, the redirected page, the page's socket and its first two events."""
    with httpx.Client(base_url=url, cookies=dict([cookie]), timeout=120) as http:
        # Not kept alive: the POST waits at the barrier for the whole class, longer than the
        # server's keep-alive timeout, and a POST on a connection the server has closed is reset
        # (a browser would retry on a fresh connection; this client opens one).
        form = http.get("/solve/", headers={"Connection": "close"})
        assert form.status_code == 200, form.status_code
        token = http.cookies["csrftoken"]
        start.wait()
        posted = post_ask(http, f"Compute {number} + 38.", token)
        assert posted.status_code == 302, (posted.status_code, posted.text[:500])
        page = http.get(posted.headers["location"])
        assert page.status_code == 200, page.status_code
        ws_path = re.search(r'data-ws-path="([^"]+)"', page.text).group(1)
        cookie_header = f"{cookie[0]}={cookie[1]}"
        with connect(
            url.replace("http", "ws") + ws_path,
            additional_headers={"Cookie": cookie_header},
            origin=url,
            open_timeout=120,
        ) as socket:
            first = json.loads(socket.recv(timeout=120))
            second = json.loads(socket.recv(timeout=120))
    return first, second


@pytest.mark.parametrize("class_size", [32, 64])
def test_a_whole_class_asking_at_once_fails_no_request_on_a_bounded_pool(pooled_site, class_size):
    url, child = pooled_site
    cookies = []
    for number in range(class_size):
        student = user_create(
            username=f"class-{number}", password="x", role="student", validate=False
        )
        client = Client()
        client.force_login(student)
        name = settings.SESSION_COOKIE_NAME
        cookies.append((name, client.cookies[name].value))

    sampler = ConnectionSampler(child.process.pid)
    sampler.start()
    start = threading.Barrier(class_size)
    results: list = [None] * class_size

    def run(number: int) -> None:
        try:
            results[number] = ask_like_a_browser(url, cookies[number], number, start)
        except BaseException as error:  # noqa: BLE001 - reported below with every other client
            results[number] = error

    threads = [threading.Thread(target=run, args=(n,)) for n in range(class_size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    sampler.stop.set()
    sampler.join()

    failures = [r for r in results if not isinstance(r, tuple)]
    assert not failures, f"{len(failures)} of {class_size} failed: {failures[:3]}\n{child.log()}"
    for first, second in results:
        # The page's socket always opens on a snapshot. What follows depends on whether a worker
        # from another test in the session is serving: "queued" status, or the generation's own
        # progress (a delta, its end) - never an error.
        assert first["type"] == "snapshot", first
        assert second["type"] in {"status", "delta", "done"}, second
    assert "Internal Server Error" not in child.log()
    # Every request needed the database; at most the pool's size of connections were open at once.
    assert 1 <= max(sampler.counts) <= POOL_SIZE, sampler.counts
