"""The generation WebSocket consumer, in process, with the real channel layer and Redis.

The worker's part (replay buffer, events on the group) is played by the test with the same modules
the worker uses; the real worker is in tests/worker/test_inference_integration.py.
"""

import asyncio

import pytest
import redis.asyncio as aioredis
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings

from webapp.accounts.services import user_create
from webapp.tutoring import events
from webapp.tutoring.models import Attempt, Generation
from webapp.tutoring.routing import websocket_urlpatterns
from worker.inference.replay import ReplayWriter
from worker.protocol import generation_group_name

# redis_url: a clean Redis database for the session (replay keys are named after row ids).
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("redis_url")]


@pytest.fixture
def generation(student, practice_set, transactional_db) -> Generation:
    attempt = Attempt.objects.create(student=student, problem=practice_set.problems.first())
    return Generation.objects.create(attempt=attempt)


@pytest.fixture
async def replay():
    client = aioredis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    yield ReplayWriter(client, ttl_seconds=60)
    await client.aclose()


async def _connect(generation_id: int, user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(
        URLRouter(websocket_urlpatterns), f"/ws/generations/{generation_id}/"
    )
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def _send_to_group(generation_id: int, event: dict) -> None:
    await get_channel_layer().group_send(
        generation_group_name(generation_id), events.channel_message(event)
    )


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


async def test_a_late_client_gets_the_text_so_far_then_only_newer_deltas(
    generation, student, replay
):
    Generation.objects.filter(pk=generation.pk).update(status="running")
    await replay.start(generation.pk, model_version="ring-tiny")
    await replay.append(generation.pk, seq=1, reasoning="Half is ")
    await replay.append(generation.pk, seq=2, reasoning="3/6.")

    communicator = await _connect(generation.pk, student)
    snapshot = await communicator.receive_json_from()
    assert (snapshot["seq"], snapshot["reasoning"], snapshot["status"]) == (
        2,
        "Half is 3/6.",
        "running",
    )
    assert snapshot["model_version"] == "ring-tiny"
    assert (await communicator.receive_json_from())["status"] == "running"

    # Delta 2 was already in the snapshot (it raced the connect); delta 3 is new.
    await _send_to_group(generation.pk, events.delta(seq=2, channel="reasoning", text="3/6."))
    await _send_to_group(generation.pk, events.delta(seq=3, channel="answer", text="5/6"))
    assert await communicator.receive_json_from() == events.delta(
        seq=3, channel="answer", text="5/6"
    )
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()


async def test_a_finished_generation_replays_from_the_row(generation, student):
    Generation.objects.filter(pk=generation.pk).update(
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
    # A late duplicate `done` from the group is not shown twice.
    await _send_to_group(generation.pk, events.done(status="done"))
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
    generation.refresh_from_db()
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


async def test_an_admin_may_watch_any_generation(generation, transactional_db):
    admin = user_create(username="root", password="x", role="admin", validate=False)
    communicator = await _connect(generation.pk, admin)
    assert (await communicator.receive_json_from())["type"] == "snapshot"
    await communicator.disconnect()


async def test_a_lost_delta_is_replaced_by_a_snapshot_from_the_replay_buffer(
    generation, student, replay
):
    Generation.objects.filter(pk=generation.pk).update(status="running")
    await replay.start(generation.pk, model_version="ring-tiny")
    communicator = await _connect(generation.pk, student)
    assert (await communicator.receive_json_from())["seq"] == 0
    await communicator.receive_json_from()  # running

    # The worker wrote deltas 1-3 to the buffer; delta 2 never reached this socket's process.
    await replay.append(generation.pk, seq=1, reasoning="Half ")
    await _send_to_group(generation.pk, events.delta(seq=1, channel="reasoning", text="Half "))
    await replay.append(generation.pk, seq=2, reasoning="is ")
    await replay.append(generation.pk, seq=3, reasoning="3/6.")
    await _send_to_group(generation.pk, events.delta(seq=3, channel="reasoning", text="3/6."))
    await _send_to_group(generation.pk, events.delta(seq=4, channel="answer", text="5/6"))

    assert (await communicator.receive_json_from())["seq"] == 1
    snapshot = await communicator.receive_json_from()
    assert (snapshot["type"], snapshot["seq"], snapshot["reasoning"]) == (
        "snapshot",
        3,
        "Half is 3/6.",
    )
    assert await communicator.receive_json_from() == events.delta(
        seq=4, channel="answer", text="5/6"
    )
    await communicator.disconnect()


async def test_a_done_past_the_last_delta_resends_the_stored_row_first(generation, student, replay):
    """The loss seen under load: the last delta lost, then a normal `done`."""
    Generation.objects.filter(pk=generation.pk).update(status="running")
    await replay.start(generation.pk, model_version="ring-tiny")
    communicator = await _connect(generation.pk, student)
    await communicator.receive_json_from()  # snapshot
    await communicator.receive_json_from()  # running
    await replay.append(generation.pk, seq=1, reasoning="1/2 = 3/6")
    await _send_to_group(generation.pk, events.delta(seq=1, channel="reasoning", text="1/2 = 3/6"))
    assert (await communicator.receive_json_from())["seq"] == 1

    # Delta 2 is lost; the worker stores the row and sends `done` numbered 2.
    Generation.objects.filter(pk=generation.pk).update(
        status="done", reasoning="1/2 = 3/6", answer="\\boxed{5/6}", final_answer="5/6"
    )
    await _send_to_group(generation.pk, events.done(status="done", final_answer="5/6", seq=2))

    snapshot = await communicator.receive_json_from()
    assert (snapshot["type"], snapshot["seq"], snapshot["answer"]) == (
        "snapshot",
        2,
        "\\boxed{5/6}",
    )
    done = await communicator.receive_json_from()
    assert (done["type"], done["seq"]) == ("done", 2)
    await communicator.disconnect()
