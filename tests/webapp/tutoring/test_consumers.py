"""The generation WebSocket consumer, in process, with the real channel layer and Redis.

The worker's part (events appended to the generation's log) is played by the test with the module
the worker uses; the real worker is in tests/worker/inference/test_inference_integration.py.
The tests' own database calls go through the async ORM, so Django's check against sync ORM calls
from the event loop stays on and would catch the consumer making one.
"""

import asyncio
import threading

import pytest
import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings

from inference_contract.event_log import EventLogWriter
from webapp.accounts.services import user_create
from webapp.tutoring import consumers, events
from webapp.tutoring.models import Attempt, Generation
from webapp.tutoring.routing import websocket_urlpatterns

# redis_url: a clean Redis database for the session (event logs are named after row ids).
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("redis_url")]


@pytest.fixture
def generation(student, practice_set, transactional_db) -> Generation:
    attempt = Attempt.objects.create(student=student, problem=practice_set.problems.first())
    return Generation.objects.create(attempt=attempt)


@pytest.fixture
async def log():
    client = aioredis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    yield EventLogWriter(client, ttl_seconds=60)
    await client.aclose()


async def _connect(generation_id: int, user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(
        URLRouter(websocket_urlpatterns), f"/ws/generations/{generation_id}/"
    )
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def test_anonymous_is_closed_with_4401(generation):
    from django.contrib.auth.models import AnonymousUser

    communicator = await _connect(generation.pk, AnonymousUser())
    assert await communicator.receive_output() == {"type": "websocket.close", "code": 4401}


async def test_another_student_is_closed_with_4403(generation, other_student):
    communicator = await _connect(generation.pk, other_student)
    assert await communicator.receive_output() == {"type": "websocket.close", "code": 4403}


async def test_an_unknown_generation_is_closed_with_4403(student, transactional_db):
    communicator = await _connect(987654321, student)
    assert await communicator.receive_output() == {"type": "websocket.close", "code": 4403}


async def test_a_queued_generation_opens_with_a_snapshot_and_its_place(generation, student):
    communicator = await _connect(generation.pk, student)
    snapshot = await communicator.receive_json_from()
    assert snapshot == events.snapshot(seq=0, reasoning="", answer="", status="queued")
    assert await communicator.receive_json_from() == events.status_queued(position=1)
    await communicator.disconnect()


async def test_a_socket_whose_opening_waits_does_not_hold_up_another(
    generation, student, monkeypatch
):
    # A class opens its sockets at once: each opening reads the database, and one that waits
    # (a slow round trip, a busy pool) must not queue the others behind it, as Channels' default
    # single thread for every consumer's database calls did.
    other = await Generation.objects.acreate(attempt_id=generation.attempt_id)
    entered, release = threading.Event(), threading.Event()
    replay = consumers.generation_replay

    def slow_replay(*, generation_id: int):
        if generation_id == generation.pk:
            entered.set()
            release.wait(timeout=10)
        return replay(generation_id=generation_id)

    monkeypatch.setattr(consumers, "generation_replay", slow_replay)
    try:
        waiting = await _connect(generation.pk, student)
        assert await asyncio.to_thread(entered.wait, 5)
        meanwhile = await _connect(other.pk, student)
        assert (await meanwhile.receive_json_from(timeout=5))["type"] == "snapshot"
        assert await waiting.receive_nothing(timeout=0.1)
    finally:
        release.set()
    assert (await waiting.receive_json_from(timeout=5))["type"] == "snapshot"
    await meanwhile.disconnect()
    await waiting.disconnect()


async def test_a_late_client_gets_the_text_so_far_then_only_newer_events(generation, student, log):
    await Generation.objects.filter(pk=generation.pk).aupdate(status="running")
    await log.append(generation.pk, [events.status_running(model_version="ring-tiny")])
    await log.append(generation.pk, [events.delta(seq=1, channel="reasoning", text="Half is ")])
    await log.append(generation.pk, [events.delta(seq=2, channel="reasoning", text="3/6.")])

    communicator = await _connect(generation.pk, student)
    snapshot = await communicator.receive_json_from()
    assert (snapshot["seq"], snapshot["reasoning"], snapshot["status"]) == (
        2,
        "Half is 3/6.",
        "running",
    )
    assert snapshot["model_version"] == "ring-tiny"
    assert (await communicator.receive_json_from())["status"] == "running"

    # The socket follows the log from where the snapshot ended: only what is new arrives.
    await log.append(generation.pk, [events.delta(seq=3, channel="answer", text="5/6")])
    assert await communicator.receive_json_from() == events.delta(
        seq=3, channel="answer", text="5/6"
    )
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()


async def test_a_finished_generation_replays_from_the_row(generation, student, log):
    await Generation.objects.filter(pk=generation.pk).aupdate(
        status="done",
        reasoning="1/2 = 3/6, 1/3 = 2/6.",
        answer="\\boxed{5/6}",
        final_answer="5/6",
        verdict="correct",
        model_version_label="ring-tiny",
        completion_tokens=30,
    )
    communicator = await _connect(generation.pk, student)
    snapshot = await communicator.receive_json_from()
    done = await communicator.receive_json_from()
    assert (snapshot["reasoning"], snapshot["answer"], snapshot["status"]) == (
        "1/2 = 3/6, 1/3 = 2/6.",
        "\\boxed{5/6}",
        "done",
    )
    assert (done["type"], done["verdict"], done["final_answer"]) == ("done", "correct", "5/6")
    # A late duplicate `done` in the log is not shown twice.
    await log.append(generation.pk, [events.done(status="done")])
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()


async def test_cancel_from_the_client_stops_a_queued_generation(generation, student):
    communicator = await _connect(generation.pk, student)
    await communicator.receive_json_from()  # snapshot
    await communicator.receive_json_from()  # queued
    await communicator.send_json_to({"type": "cancel"})
    done = await communicator.receive_json_from(timeout=5)
    assert (done["type"], done["status"]) == ("done", "cancelled")
    await asyncio.sleep(0)
    await generation.arefresh_from_db()
    assert generation.status == "cancelled"
    await communicator.disconnect()


async def test_an_unknown_message_gets_an_error_event(generation, student):
    communicator = await _connect(generation.pk, student)
    await communicator.receive_json_from()
    await communicator.receive_json_from()
    await communicator.send_json_to({"type": "speed-up"})
    error = await communicator.receive_json_from()
    assert error["type"] == "error" and error["code"] == "unknown_message"
    await communicator.disconnect()


@pytest.mark.parametrize(
    "frame",
    [
        {"text_data": "not json"},
        {"text_data": "[" * 100_000 + "]" * 100_000},  # too long (and too deep) to decode
        {"text_data": '{"type": "cancel"' + " " * 2000 + "}"},  # a stop request, but too long
        {"bytes_data": b"\x00\x01"},
    ],
    ids=["not-json", "deeply-nested", "too-long", "binary"],
)
async def test_a_malformed_message_gets_an_error_event_and_the_socket_stays_open(
    generation, student, frame
):
    """Channels' `receive` raised on these (JSONDecodeError, RecursionError, ValueError), which
    dropped the socket with 1011 and logged a server error for every such message."""
    communicator = await _connect(generation.pk, student)
    await communicator.receive_json_from()  # snapshot
    await communicator.receive_json_from()  # queued
    await communicator.send_to(**frame)
    error = await communicator.receive_json_from()
    assert error["type"] == "error" and error["code"] == "unknown_message"
    # Still open, and still obeys a real stop request.
    await communicator.send_json_to({"type": "cancel"})
    done = await communicator.receive_json_from(timeout=5)
    assert (done["type"], done["status"]) == ("done", "cancelled")
    await communicator.disconnect()


async def test_a_refused_socket_ignores_what_the_client_sends_before_it_closes(
    generation, other_student
):
    """A stop request sent by another student before the refusal's close arrives used to raise
    AttributeError ('NoneType' has no attribute 'attempt'); it is ignored, and stops nothing."""
    communicator = await _connect(generation.pk, other_student)
    assert await communicator.receive_output() == {"type": "websocket.close", "code": 4403}
    await communicator.send_json_to({"type": "cancel"})
    await communicator.send_to(text_data="not json")
    assert await communicator.receive_nothing(timeout=0.2)
    await generation.arefresh_from_db()
    assert (generation.status, generation.cancel_requested) == ("queued", False)
    await communicator.disconnect()


async def test_an_admin_may_watch_any_generation(generation, transactional_db):
    admin = await sync_to_async(user_create)(
        username="root", password="x", role="admin", validate=False
    )
    communicator = await _connect(generation.pk, admin)
    assert (await communicator.receive_json_from())["type"] == "snapshot"
    await communicator.disconnect()


async def test_a_done_past_the_last_delta_resends_the_stored_row_first(generation, student, log):
    """The worker could not write its last delta (Redis down past its retries) but stored the row
    and then sent `done`, numbered after that delta: the page gets the row's text first."""
    await Generation.objects.filter(pk=generation.pk).aupdate(status="running")
    communicator = await _connect(generation.pk, student)
    await communicator.receive_json_from()  # snapshot
    await communicator.receive_json_from()  # running
    await log.append(generation.pk, [events.delta(seq=1, channel="reasoning", text="1/2 = 3/6")])
    assert (await communicator.receive_json_from())["seq"] == 1

    await Generation.objects.filter(pk=generation.pk).aupdate(
        status="done", reasoning="1/2 = 3/6", answer="\\boxed{5/6}", final_answer="5/6"
    )
    await log.append(generation.pk, [events.done(status="done", final_answer="5/6", seq=2)])

    snapshot = await communicator.receive_json_from()
    assert (snapshot["type"], snapshot["seq"], snapshot["answer"]) == (
        "snapshot",
        2,
        "\\boxed{5/6}",
    )
    done = await communicator.receive_json_from()
    assert (done["type"], done["seq"]) == ("done", 2)
    await communicator.disconnect()
