"""Promotion, override, rollback and the one-champion rule, through the registry services.

The swap control message is checked on the real test Redis: a subscriber on the control channel must
receive it once the promotion's transaction has committed, and not before.
"""

import json
import time

import pytest
import redis
from django.conf import settings
from django.db import IntegrityError, transaction

from inference_contract.protocol import control_channel
from tests.webapp.registry.factories import domain_result, make_version
from webapp.accounts.services import user_create
from webapp.core.errors import ServiceError
from webapp.registry.models import ModelVersion, PromotionEvent, VersionStatus
from webapp.registry.services import (
    model_version_promote,
    model_version_register,
    model_version_rollback,
    worker_swap_broadcast,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin():
    return user_create(username="reg-admin", password="x", role="admin", validate=False)


@pytest.fixture
def champion():
    return make_version(
        "base",
        status=VersionStatus.CHAMPION,
        results={"math": domain_result(140, 200), "science": domain_result(100, 200)},
    )


def test_promotion_is_refused_when_the_candidate_regresses(admin, champion):
    worse = make_version(
        "worse", results={"math": domain_result(80, 200), "science": domain_result(100, 200)}
    )
    with pytest.raises(ServiceError) as refused:
        model_version_promote(model_version=worse, actor=admin)
    assert refused.value.code == "regression" and refused.value.status == 409
    assert "math" in refused.value.message
    champion.refresh_from_db()
    worse.refresh_from_db()
    assert champion.status == VersionStatus.CHAMPION
    assert worse.status == VersionStatus.CANDIDATE
    assert not PromotionEvent.objects.exists()


def test_an_override_needs_a_reason_and_is_recorded(admin, champion):
    worse = make_version(
        "worse", results={"math": domain_result(80, 200), "science": domain_result(100, 200)}
    )
    with pytest.raises(ServiceError) as refused:
        model_version_promote(model_version=worse, actor=admin, override=True, reason="  ")
    assert refused.value.code == "reason_required"

    event = model_version_promote(
        model_version=worse, actor=admin, override=True, reason="math set was mislabelled"
    )
    assert event.override is True
    assert event.reason == "math set was mislabelled"
    assert event.actor == admin
    assert event.previous_champion == champion
    assert event.gate["passed"] is False
    assert [c["verdict"] for c in event.gate["comparisons"]] == ["regressed", "ok"]
    champion.refresh_from_db()
    assert champion.status == VersionStatus.RETIRED
    assert ModelVersion.objects.get(status=VersionStatus.CHAMPION) == worse


def test_a_better_candidate_is_promoted_without_override(admin, champion):
    better = make_version(
        "better", results={"math": domain_result(170, 200), "science": domain_result(101, 200)}
    )
    event = model_version_promote(model_version=better, actor=admin, override=True, reason="x")
    # The gate passed, so nothing was overridden even though the admin ticked the box.
    assert event.override is False and event.gate["passed"] is True
    better.refresh_from_db()
    assert better.status == VersionStatus.CHAMPION and better.promoted_at is not None


def test_an_unevaluated_candidate_is_refused(admin, champion):
    fresh = make_version("fresh")
    with pytest.raises(ServiceError) as refused:
        model_version_promote(model_version=fresh, actor=admin)
    assert "no finished evaluation" in refused.value.message


def test_promoting_the_champion_again_is_refused(admin, champion):
    with pytest.raises(ServiceError):
        model_version_promote(model_version=champion, actor=admin)


def test_the_database_allows_one_champion_only(champion):
    with pytest.raises(IntegrityError), transaction.atomic():
        make_version("second", status=VersionStatus.CHAMPION)


def test_rollback_walks_back_through_the_promotion_history(admin, champion):
    results = {"math": domain_result(150, 200), "science": domain_result(100, 200)}
    second = make_version("second", results=results)
    third = make_version("third", results=results)
    model_version_promote(model_version=second, actor=admin)
    model_version_promote(model_version=third, actor=admin)

    event = model_version_rollback(actor=admin, reason="answers got longer")
    assert event.action == "rollback" and event.model_version == second
    assert event.previous_champion == third and event.reason == "answers got longer"
    assert ModelVersion.objects.get(status=VersionStatus.CHAMPION) == second
    third.refresh_from_db()
    assert third.status == VersionStatus.RETIRED

    assert model_version_rollback(actor=admin).model_version == champion
    with pytest.raises(ServiceError) as nothing_left:
        model_version_rollback(actor=admin)
    assert nothing_left.value.code == "no_previous"
    assert ModelVersion.objects.filter(status=VersionStatus.CHAMPION).count() == 1


def test_rollback_is_not_blocked_by_the_gate(admin, champion):
    # The previous champion scored worse than the current one: rollback still works.
    better = make_version(
        "better", results={"math": domain_result(190, 200), "science": domain_result(190, 200)}
    )
    model_version_promote(model_version=better, actor=admin)
    event = model_version_rollback(actor=admin)
    assert event.model_version == champion and event.gate["passed"] is False


def test_the_swap_message_is_published_after_commit(
    admin, champion, django_capture_on_commit_callbacks
):
    better = make_version(
        "better", results={"math": domain_result(170, 200), "science": domain_result(150, 200)}
    )
    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    subscriber = client.pubsub()
    subscriber.subscribe(control_channel(client))
    assert subscriber.get_message(timeout=5)["type"] == "subscribe"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        model_version_promote(model_version=better, actor=admin)
    # Nothing is sent while the transaction is open...
    assert subscriber.get_message(timeout=0.5) is None
    for callback in callbacks:
        callback()
    # ...and exactly the swap message once it commits.
    deadline = time.monotonic() + 5
    message = None
    while message is None and time.monotonic() < deadline:
        message = subscriber.get_message(timeout=1)
    subscriber.close()
    assert message is not None
    assert json.loads(message["data"]) == {
        "type": "swap",
        "model_version_id": better.pk,
        "label": "better",
        "path": "/checkpoints/better",
    }


def test_the_swap_broadcast_reports_how_many_workers_listen(champion):
    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    subscriber = client.pubsub()
    subscriber.subscribe(control_channel(client))
    assert subscriber.get_message(timeout=5)["type"] == "subscribe"
    assert worker_swap_broadcast(model_version=champion) >= 1
    message = subscriber.get_message(timeout=5)
    subscriber.close()
    assert json.loads(message["data"])["model_version_id"] == champion.pk


def test_register_is_idempotent_per_label_and_path(champion):
    first = model_version_register(
        path="/ckpt/a", label="job1-step5", parent=champion, manifest={"c3po": {"step": 5}}
    )
    again = model_version_register(path="/ckpt/a", label="job1-step5", parent=champion)
    assert again == first and first.status == VersionStatus.CANDIDATE
    with pytest.raises(ServiceError):
        model_version_register(path="/ckpt/b", label="job1-step5")
