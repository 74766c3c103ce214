"""The whole streaming path for real: browser socket → uvicorn → Redis → `python -m worker.inference`
(vLLM) → Redis → the socket, on the test PostgreSQL.

Nothing is stood in: the site runs in its own uvicorn process (`live_site`), the worker in its own
process with a vLLM engine (`inference_worker`), and this process plays the browser with a real
WebSocket client. The worker decodes greedily from a random-init ring-tiny, so every answer runs to
INFERENCE_MAX_NEW_TOKENS and the same prompt gives the same text (see tests/fixtures/inference.py).
Engines are expensive (30-80 s each on two cores): one worker serves most tests; a second one starts
for the crash test, and the swap test starts one more engine inside the worker.
"""

import json
import os
import re
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import psutil
import pytest
from django.conf import settings
from django.test import Client
from websockets.sync.client import connect

from inference_contract.control import publish_swap, recent_swap_results
from inference_contract.cpu_layout import parse_cpu_list
from tests.fixtures.inference import TEST_MAX_NEW_TOKENS, wait_for_row
from tests.fixtures.services import post_ask
from webapp.accounts.services import user_create
from webapp.core.redis_client import redis_client
from webapp.problems.content_key import problem_content_key
from webapp.problems.models import Problem
from webapp.registry.models import ModelVersion
from webapp.registry.services import worker_swap_broadcast
from webapp.tutoring.generation_services import generation_enqueue
from webapp.tutoring.models import Attempt, Generation

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.usefixtures("transactional_db"),
    pytest.mark.timeout(900),
]

STATEMENT = "Compute 47 + 38."


def make_student(name: str):
    return user_create(username=name, password="x", role="student", validate=False)


def make_problem() -> Problem:
    return Problem.objects.create(
        statement=STATEMENT,
        content_key=problem_content_key(STATEMENT),
        answer_kind="number",
        reference_answer="85",
    )


def enqueue_for(student, problem: Problem) -> Generation:
    attempt = Attempt.objects.create(student=student, problem=problem)
    return generation_enqueue(attempt=attempt)


def session_cookie(client, user) -> str:
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def open_socket(live_site, generation_id: int, cookie: str):
    return connect(
        f"{live_site.ws_url}/ws/generations/{generation_id}/",
        additional_headers={"Cookie": cookie},
        origin=live_site.url,
        open_timeout=15,
    )


@contextmanager
def watched_generation(live_site, client, student, problem: Problem):
    """Enqueue a generation with the student's socket already open when the worker can claim it.

    A 600-token answer takes ~3 s on a quiet machine: a socket opened after the request reached the
    queue may see only the stored result. Holding back the on-commit queue push until the socket is
    up makes "the first delta" a certainty, not a race.
    """
    held = []
    with mock.patch("django.db.transaction.on_commit", side_effect=held.append):
        generation = enqueue_for(student, problem)
    assert len(held) == 1, "generation_enqueue pushes to the queue in one on-commit callback"
    with open_socket(live_site, generation.pk, session_cookie(client, student)) as socket:
        assert json.loads(socket.recv(timeout=30))["type"] == "snapshot"
        held[0]()
        yield generation, socket


def read_until(socket, kind: str, *, timeout: float = 60.0, events: list | None = None) -> list:
    """Events up to and including the first of type `kind`."""
    events = [] if events is None else events
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {kind!r} event in {timeout} s; got {[e['type'] for e in events]}"
        event = json.loads(socket.recv(timeout=remaining))
        events.append(event)
        if event["type"] == kind:
            return events


def rebuild(events: list) -> tuple[str, str, int]:
    """Apply snapshot/delta events the way the browser does: (reasoning, answer, last seq)."""
    reasoning, answer, seq = "", "", 0
    for event in events:
        if event["type"] == "snapshot" and event["seq"] >= seq:
            reasoning, answer, seq = event["reasoning"], event["answer"], event["seq"]
        elif event["type"] == "delta" and event["seq"] > seq:
            assert event["seq"] == seq + 1, f"gap: {seq} -> {event['seq']}"
            seq = event["seq"]
            if event["channel"] == "reasoning":
                reasoning += event["text"]
            else:
                answer += event["text"]
    return reasoning, answer, seq


def test_a_websocket_client_receives_a_complete_streamed_solution(
    inference_worker, live_site, client
):
    student = make_student("stream-student")
    generation = enqueue_for(student, make_problem())
    with open_socket(live_site, generation.pk, session_cookie(client, student)) as socket:
        events = read_until(socket, "done")

    # The page's first message is the snapshot (the worker may already have streamed a little).
    snapshot = events[0]
    assert snapshot["type"] == "snapshot"
    deltas = [e for e in events if e["type"] == "delta"]
    assert [d["seq"] for d in deltas] == list(
        range(snapshot["seq"] + 1, snapshot["seq"] + 1 + len(deltas))
    )
    # Coalesced: a few characters per message on average, not one message per token.
    assert len(deltas) < TEST_MAX_NEW_TOKENS
    done = events[-1]
    label = inference_worker.primary.heartbeat()["model_version"]
    assert done["status"] == "done" and done["model_version"] == label
    assert done["completion_tokens"] == TEST_MAX_NEW_TOKENS
    assert 0 < done["time_to_first_token_ms"] < done["duration_ms"]

    generation.refresh_from_db()
    reasoning, answer, _ = rebuild(events)
    assert (generation.reasoning, generation.answer) == (reasoning, answer)
    assert len(reasoning) > 20
    assert generation.status == "done"
    assert generation.model_version_label == label
    assert generation.worker_id == inference_worker.worker_id
    assert generation.completion_tokens == TEST_MAX_NEW_TOKENS
    assert generation.prompt_tokens > len(STATEMENT)
    # The random model never closes its reasoning: no final answer, so the verdict is "wrong".
    assert (generation.final_answer, generation.verdict) == ("", "wrong")


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs a core to spare")
def test_with_the_cpu_layout_a_worker_runs_beside_its_engines_cores(inference_worker):
    """vLLM's CPU engine binds its OpenMP threads to cores and spins on them; with
    INFERENCE_KEEP_OFF_ENGINE_CPUS the worker puts the engine's scheduler beside them and itself on
    the other cores (inference_contract/cpu_layout.py). A worker of its own: the session's worker
    runs with the default (off)."""
    assert inference_worker.primary.heartbeat()["cpus"] is None
    worker = inference_worker.start_worker("cpu-layout", INFERENCE_KEEP_OFF_ENGINE_CPUS="1")
    try:
        beat = worker.heartbeat()
        engine, others = (parse_cpu_list(beat["cpus"][key]) for key in ("engine", "others"))
        assert engine and others and not engine & others
        root = psutil.Process(worker.process.pid)
        masks = {
            process.pid: [os.sched_getaffinity(t.id) for t in process.threads()]
            for process in [root, *root.children(recursive=True)]
        }
        assert all(mask == others for mask in masks[root.pid])
        on_engine = [
            pid for pid, per_thread in masks.items() if all(m <= engine for m in per_thread)
        ]
        # The bound engine process and the scheduler between it and the worker.
        assert len(on_engine) >= 2, masks
        # Every other process is kept wholly off the engine's cores.
        for pid, per_thread in masks.items():
            assert pid in on_engine or all(m == others for m in per_thread), pid
    finally:
        worker.stop()


def test_cancel_stops_the_generation_inside_the_engine(inference_worker, live_site, client):
    # A 600-token answer takes ~3 s, and a loaded machine can run all of it while this test is not
    # scheduled: so the engine is held (SIGSTOP) from before the claim until the worker has taken
    # the stop. The request is inside the engine, generating nothing, when the stop arrives.
    student = make_student("cancel-student")
    with (
        inference_worker.engines_held() as hold,
        watched_generation(live_site, client, student, make_problem()) as (generation, socket),
    ):
        wait_for_row(generation, lambda row: row.status == "running", "claim")
        socket.send(json.dumps({"type": "cancel"}))
        worker = inference_worker.by_id(generation.worker_id)
        worker.wait_for_log(f"cancelling generation {generation.pk}")
        hold.resume()
        done = read_until(socket, "done")[-1]

    assert done["status"] == "cancelled"
    generation.refresh_from_db()
    assert generation.status == "cancelled" and generation.cancel_requested
    assert generation.completion_tokens < TEST_MAX_NEW_TOKENS  # aborted, not run to the limit
    assert f"cancelling generation {generation.pk}" in inference_worker.log()
    # The engine released the request: the worker reports nothing in flight.
    inference_worker.primary.wait_until(
        lambda beat: beat["in_flight"] == 0, timeout=10, what="in_flight 0"
    )


def test_a_reconnecting_client_gets_the_full_text(inference_worker, live_site, client):
    student = make_student("reconnect-student")
    cookie = session_cookie(client, student)
    with watched_generation(live_site, client, student, make_problem()) as (generation, first):
        seen = read_until(first, "delta")
        while rebuild(seen)[2] < 3:
            read_until(first, "delta", events=seen)
    partial, _, partial_seq = rebuild(seen)

    with open_socket(live_site, generation.pk, cookie) as second:
        events = read_until(second, "done")
    snapshot = events[0]
    assert snapshot["type"] == "snapshot"
    assert snapshot["seq"] >= partial_seq and snapshot["reasoning"].startswith(partial)
    reasoning, answer, _ = rebuild(events)

    generation.refresh_from_db()
    assert generation.status == "done"
    assert (reasoning, answer) == (generation.reasoning, generation.answer)

    # Connecting after the end: the stored text and the `done` event, nothing else.
    with open_socket(live_site, generation.pk, cookie) as third:
        late = read_until(third, "done")
    assert [e["type"] for e in late] == ["snapshot", "done"]
    assert late[0]["reasoning"] == generation.reasoning and late[0]["status"] == "done"


def _corrupt_copy(source: Path, target: Path, how: str) -> Path:
    shutil.copytree(source, target)
    if how == "flipped bytes":
        weights = target / "model.safetensors"
        data = bytearray(weights.read_bytes())
        middle = len(data) // 2
        data[middle : middle + 64] = bytes(64)
        weights.write_bytes(bytes(data))
    else:  # weights that do not fit the config, with a manifest that matches the files
        import hashlib

        config = json.loads((target / "config.json").read_text())
        config["hidden_size"] = config["hidden_size"] * 2
        (target / "config.json").write_text(json.dumps(config))
        manifest = json.loads((target / "manifest.json").read_text())
        manifest["files"]["config.json"]["sha256"] = hashlib.sha256(
            (target / "config.json").read_bytes()
        ).hexdigest()
        (target / "manifest.json").write_text(json.dumps(manifest))
    return target


@pytest.mark.parametrize("how", ["flipped bytes", "wrong shapes"])
def test_a_corrupt_checkpoint_is_refused(inference_worker, live_site, client, tmp_path, how):
    primary = inference_worker.primary
    before = primary.heartbeat()
    label = f"ring-tiny-{how.replace(' ', '-')}"
    bad = _corrupt_copy(inference_worker.checkpoint, tmp_path / label, how)
    assert publish_swap(redis_client(), model_version_id=None, label=label, path=str(bad)) >= 1

    beat = primary.wait_until(
        lambda b: (b.get("last_swap") or {}).get("label") == label,
        timeout=60,
        what="swap result",
    )
    assert beat["last_swap"]["ok"] is False
    assert label in beat["last_swap_error"]
    expected = "corrupt" if how == "flipped bytes" else "does not fit config.json"
    assert expected in beat["last_swap_error"]
    assert (beat["model_version"], beat["state"]) == (before["model_version"], "serving")
    assert recent_swap_results(redis_client(), limit=1)[0]["label"] == label
    assert f"swap to {label}" in primary.log() and "refused" in primary.log()

    # Still serving the old version.
    student = make_student(f"after-{label}")
    generation = enqueue_for(student, make_problem())
    with open_socket(live_site, generation.pk, session_cookie(client, student)) as socket:
        done = read_until(socket, "done")[-1]
    assert done["status"] == "done" and done["model_version"] == before["model_version"]


def test_a_worker_killed_mid_stream_has_its_request_completed_by_another(
    inference_worker, live_site, client
):
    second = inference_worker.start_worker("second")
    student = make_student("crash-student")
    with watched_generation(live_site, client, student, make_problem()) as (generation, socket):
        events = read_until(socket, "delta")
        generation.refresh_from_db()
        victim = inference_worker.by_id(generation.worker_id)
        survivor = second if victim is not second else inference_worker.primary
        victim.kill()
        read_until(socket, "done", timeout=120, events=events)

    done = events[-1]
    assert done["status"] == "done"
    generation.refresh_from_db()
    assert generation.status == "done"
    assert generation.worker_id == survivor.worker_id
    # The survivor restarted the answer: clients were told to drop the dead worker's text.
    resets = [e for e in events[1:] if e["type"] == "snapshot"]
    assert resets and resets[0]["reasoning"] == "" and resets[0]["seq"] >= 1
    reasoning, answer, _ = rebuild(events)
    assert (reasoning, answer) == (generation.reasoning, generation.answer)
    assert f"re-claimed generation {generation.pk}" in survivor.log()
    inference_worker.primary = survivor


def _reference_prefix(checkpoint: Path, n_tokens: int = 12) -> str:
    """The first greedy tokens of `checkpoint` on STATEMENT, decoded, computed by ringmodel."""
    import torch

    import ringmodel as rm
    from ringmodel.generation import sample

    model, tokenizer, _ = rm.load_checkpoint(checkpoint)
    with torch.inference_mode():
        prompt = rm.build_prompt_ids(tokenizer, STATEMENT)
        tokens = sample(model, [prompt], max_new_tokens=n_tokens, temperature=0.0, eos_token_id=0)
    return rm.split_reasoning(tokenizer.decode(tokens[0].token_ids)).reasoning


def test_a_swap_under_load_fails_no_request_and_later_answers_carry_the_new_version(
    inference_worker, live_site, client, ring_tiny_second_checkpoint
):
    primary = inference_worker.primary
    old_label = primary.heartbeat()["model_version"]
    new_version = ModelVersion.objects.create(
        label="ring-tiny-seed3", path=str(ring_tiny_second_checkpoint)
    )
    problem = make_problem()
    students = [make_student(f"load-{i}") for i in range(2)]
    # One browser (test client) per student: logging a second user in would end the first session.
    cookies = [session_cookie(Client(), s) for s in students]
    finished: list[dict] = []
    failures: list[str] = []
    stop = threading.Event()

    def student_loop(index: int) -> None:
        while not stop.is_set():
            generation = enqueue_for(students[index], problem)
            enqueued_at = time.monotonic()
            try:
                with open_socket(live_site, generation.pk, cookies[index]) as socket:
                    events = read_until(socket, "done", timeout=240)
            except Exception as error:  # noqa: BLE001 - reported by the assertions below
                failures.append(f"generation {generation.pk}: {error!r}")
                return
            finished.append({"id": generation.pk, "enqueued_at": enqueued_at, "events": events})

    threads = [threading.Thread(target=student_loop, args=(i,)) for i in range(len(students))]
    for thread in threads:
        thread.start()
    time.sleep(3)
    promoted_at = time.monotonic()
    assert worker_swap_broadcast(model_version=new_version) >= 1
    beat = primary.wait_until(
        lambda b: (b.get("last_swap") or {}).get("label") == "ring-tiny-seed3",
        # A second engine's start shares the cores with the first one's answers: ~1 min on an
        # idle two-core machine, several on a busy one.
        timeout=540,
        what="swap",
    )
    swapped_at = time.monotonic()
    assert beat["model_version"] == "ring-tiny-seed3", beat["last_swap"]
    # Go on until an answer of the new version is back: on a loaded machine the answers that were
    # in flight at the switch can take longer than a fixed wait (7-16 s for 600 tokens at a load
    # average of 7-14), and then none of the new version would have been asked for.
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not any(
        record["events"][-1].get("model_version") == "ring-tiny-seed3" for record in finished
    ):
        time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join(timeout=240)

    assert not failures, failures
    prefixes = {
        old_label: _reference_prefix(inference_worker.checkpoint),
        "ring-tiny-seed3": _reference_prefix(ring_tiny_second_checkpoint),
    }
    assert prefixes[old_label] != prefixes["ring-tiny-seed3"]
    by_version: dict[str, int] = {}
    for record in finished:
        events = record["events"]
        done = events[-1]
        assert done["status"] == "done", done
        assert not [e for e in events if e["type"] == "error"]
        label = done["model_version"]
        by_version[label] = by_version.get(label, 0) + 1
        row = Generation.objects.get(pk=record["id"])
        assert row.model_version_label == label
        # One answer, one version: the text is that version's own greedy text.
        assert row.reasoning.startswith(prefixes[label]), (label, row.reasoning[:40])
        if record["enqueued_at"] > swapped_at + 0.5:
            assert label == "ring-tiny-seed3"
            assert row.model_version_id == new_version.pk
        if record["enqueued_at"] < promoted_at:
            assert label == old_label
    assert by_version.get(old_label, 0) >= 1 and by_version.get("ring-tiny-seed3", 0) >= 1
    assert beat["last_swap"]["ok"] is True
    # The old engine finished its answers and was shut down.
    primary.wait_until(lambda b: b["retiring_engines"] == 0, timeout=60, what="old engine gone")


def _database_commits() -> int:
    """PostgreSQL's own count of the test database's committed transactions, read from another
    database (so the reading adds none) once every backend has reported: an idle backend sends
    its counts within 10 s (PGSTAT_IDLE_INTERVAL)."""
    import psycopg

    from tests.fixtures.services import database_url_of

    time.sleep(11)
    params = dict(settings.DATABASES["default"], NAME="postgres")
    with psycopg.connect(database_url_of(params), autocommit=True) as admin:
        return admin.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s",
            [settings.DATABASES["default"]["NAME"]],
        ).fetchone()[0]


def test_a_generation_costs_the_whole_stack_at_most_4_commits(inference_worker, live_site, client):
    """Server-wide, as issue #18 counts them: the click (the htmx ask POST, on the site served as
    deployed, with its pool), the page's socket until `done`, and the worker's claim and store,
    counted by PostgreSQL itself, so every pool check, session and user read and autocommit
    statement is in it (measured: 4 per generation; 15 before the clicks, the socket and the pool
    check each became one transaction or none)."""
    import httpx

    student = make_student("commit-budget-student")
    cookie = session_cookie(client, student)
    name, value = cookie.split("=", 1)

    def ask(http: httpx.Client, number: int) -> list[dict]:
        page = post_ask(http, f"Compute {number} + 38.", token, htmx_from=f"{live_site.url}/solve/")
        assert page.status_code == 200, page.text[:500]
        generation_id = int(re.search(r'data-ws-path="/ws/generations/(\d+)/"', page.text)[1])
        with open_socket(live_site, generation_id, cookie) as socket:
            return read_until(socket, "done")

    asks = 4
    with httpx.Client(base_url=live_site.url, cookies={name: value}, timeout=60) as http:
        assert http.get("/solve/").status_code == 200  # the page the student asks from
        token = http.cookies["csrftoken"]
        ask(http, 0)  # warm: the site's pool, the worker's connection
        before = _database_commits()
        answers = [ask(http, number) for number in range(1, asks + 1)]
        after = _database_commits()

    assert all(events[-1]["type"] == "done" for events in answers)
    assert (after - before) / asks <= 4, after - before
