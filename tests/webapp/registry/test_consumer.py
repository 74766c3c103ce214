"""The training-job WebSocket: who may connect, the snapshot on connect, and live forwarding.

The consumer runs in-process (channels' WebsocketCommunicator) against the real Redis channel
layer; the browser-level round trip through the live server is in the integration tests.
"""

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from tests.webapp.registry.factories import make_version
from webapp.accounts.services import user_create
from webapp.registry import events
from webapp.registry.models import TrainingJob, TrainingMetric, TrainingSample, VersionStatus
from webapp.registry.routing import websocket_urlpatterns

pytestmark = pytest.mark.django_db(transaction=True)


def _job() -> TrainingJob:
    base = make_version("ws-base", status=VersionStatus.CHAMPION)
    job = TrainingJob.objects.create(base_model=base, stage="c3po-math", total_steps=5)
    TrainingMetric.objects.create(job=job, step=1, metrics={"reward_mean": 0.25})
    TrainingSample.objects.create(
        job=job, step=1, prompt="Compute 1 + 1.", completion="<script>x</script>", reward=0.0
    )
    return job


async def _connect(user, job_id: int) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(
        URLRouter(websocket_urlpatterns), f"/ws/training-jobs/{job_id}/"
    )
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def _close_code(communicator: WebsocketCommunicator) -> int:
    output = await communicator.receive_output(timeout=5)
    assert output["type"] == "websocket.close"
    return output["code"]


async def test_anonymous_and_non_admins_are_refused():
    job = await sync_to_async(_job)()
    assert await _close_code(await _connect(AnonymousUser(), job.pk)) == 4401
    for role in ("student", "teacher"):
        user = await sync_to_async(user_create)(
            username=f"ws-{role}", password="x", role=role, validate=False
        )
        assert await _close_code(await _connect(user, job.pk)) == 4403


async def test_an_unknown_job_is_refused():
    admin = await sync_to_async(user_create)(
        username="ws-admin", password="x", role="admin", validate=False
    )
    assert await _close_code(await _connect(admin, 987654)) == 4404


async def test_an_id_past_any_job_is_refused_not_crashed():
    """A 96-digit id made a Channels group name over 100 characters: the consumer raised
    TypeError and the socket got no close code instead of 4404."""
    admin = await sync_to_async(user_create)(
        username="ws-admin-long", password="x", role="admin", validate=False
    )
    communicator = await _connect(admin, 10**95)
    assert await _close_code(communicator) == 4404
    await communicator.wait()


async def test_admin_gets_a_snapshot_then_live_events():
    job = await sync_to_async(_job)()
    admin = await sync_to_async(user_create)(
        username="ws-admin2", password="x", role="admin", validate=False
    )
    communicator = await _connect(admin, job.pk)
    snapshot = await communicator.receive_json_from(timeout=5)
    assert snapshot["type"] == "snapshot"
    assert snapshot["metrics"] == [{"step": 1, "reward_mean": 0.25}]
    assert snapshot["samples"][0]["completion"] == "<script>x</script>"  # escaped by the page
    assert snapshot["job"]["status"] == "queued" and snapshot["job"]["total_steps"] == 5
    assert snapshot["ranks"] == [] and snapshot["stale_after_seconds"] > 0  # one process

    event = events.metric_event(step=2, metrics={"reward_mean": 0.5})
    await get_channel_layer().group_send(events.training_job_group_name(job.pk), event)
    assert await communicator.receive_json_from(timeout=5) == event
    rows = [{"rank": 0, "host": "h", "pid": 7, "age_seconds": 1.0, "state": "alive"}]
    ranks = events.ranks_event(rows=rows)
    await get_channel_layer().group_send(events.training_job_group_name(job.pk), ranks)
    assert await communicator.receive_json_from(timeout=5) == ranks
    resumed = events.resumed_event(step=1)
    await get_channel_layer().group_send(events.training_job_group_name(job.pk), resumed)
    assert await communicator.receive_json_from(timeout=5) == resumed
    await communicator.disconnect()
