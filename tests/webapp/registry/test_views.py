"""The dashboard's pages and actions: role boundaries, the promote/override/rollback forms, the
launch form (documented defaults, pool count, validation) and the job page (escaped samples)."""

import json
import uuid

import pytest
from django.urls import reverse

from inference_contract.protocol import SWAP_LOG_KEY
from inference_contract.worker_registry import heartbeat_forget, heartbeat_queue
from tests.webapp.registry.factories import domain_result, make_pool_problems, make_version
from webapp.accounts.services import user_create
from webapp.core.redis_client import redis_client
from webapp.registry.models import (
    ModelVersion,
    PromotionEvent,
    TrainingJob,
    TrainingSample,
    VersionStatus,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def users():
    return {
        role: user_create(username=f"v-{role}", password="x", role=role, validate=False)
        for role in ("student", "teacher", "admin")
    }


@pytest.fixture
def champion(tmp_path):
    version = make_version(
        "champ", status=VersionStatus.CHAMPION, results={"math": domain_result(70, 100)}
    )
    (tmp_path / "champ").mkdir()
    version.path = str(tmp_path / "champ")
    version.save()
    return version


@pytest.fixture
def job(champion):
    return TrainingJob.objects.create(base_model=champion, stage="c3po-math", total_steps=3)


def _pages(job, champion):
    return [
        ("get", reverse("registry:dashboard")),
        ("get", reverse("registry:serving")),
        ("get", reverse("registry:registry")),
        ("get", reverse("registry:jobs")),
        ("get", reverse("registry:pool_count")),
        ("get", reverse("registry:job", args=[job.pk])),
        ("post", reverse("registry:promote", args=[champion.pk])),
        ("post", reverse("registry:evaluate", args=[champion.pk])),
        ("post", reverse("registry:rollback")),
        ("post", reverse("registry:launch")),
        ("post", reverse("registry:cancel", args=[job.pk])),
        ("post", reverse("registry:resume", args=[job.pk])),
    ]


def test_anonymous_visitors_are_sent_to_log_in(client, job, champion):
    for method, url in _pages(job, champion):
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("accounts:login"))


@pytest.mark.parametrize("role", ["student", "teacher"])
def test_other_roles_get_403_and_change_nothing(client, users, job, champion, role):
    client.force_login(users[role])
    for method, url in _pages(job, champion):
        assert getattr(client, method)(url).status_code == 403, url
    job.refresh_from_db()
    assert job.status == "queued" and not job.cancel_requested
    assert not PromotionEvent.objects.exists()


def test_the_dashboard_shows_registry_serving_jobs_and_the_launch_form(client, users, job):
    client.force_login(users["admin"])
    response = client.get(reverse("registry:dashboard"))
    assert response.status_code == 200
    page = response.content.decode()
    for text in ("Model registry", "Serving", "Training jobs", "Launch a training job", "champ"):
        assert text in page
    assert "70.0%" in page  # the champion's math accuracy
    # Documented defaults are in the form: the ring-tiny preset's Φ and lr.
    assert 'name="hp_budget_tokens"' in page and "Default 4096." in page
    assert "Ring-lite paper: 409600." in page
    # Every page's htmx swaps a refusal (422), so the dashboard's refusals show (base.html).
    assert '{"code":"422","swap":true}' in page


def test_a_refused_promotion_is_shown_in_the_table(client, users, champion):
    worse = make_version("worse", results={"math": domain_result(20, 100)})
    client.force_login(users["admin"])
    response = client.post(reverse("registry:promote", args=[worse.pk]), HTTP_HX_REQUEST="true")
    # A refusal (webapp.core.http.refused): 422, which the page's htmx config swaps in.
    assert response.status_code == 422
    assert "Promotion refused" in response.content.decode()
    worse.refresh_from_db()
    assert worse.status == VersionStatus.CANDIDATE


def test_override_with_a_reason_and_rollback_through_the_forms(client, users, champion):
    worse = make_version("worse", results={"math": domain_result(20, 100)})
    client.force_login(users["admin"])
    response = client.post(
        reverse("registry:promote", args=[worse.pk]),
        {"override": "on", "reason": "held-out math set is stale"},
        HTTP_HX_REQUEST="true",
    )
    assert "override recorded" in response.content.decode()
    event = PromotionEvent.objects.get()
    assert event.override and event.reason == "held-out math set is stale"
    assert event.actor == users["admin"]

    response = client.post(reverse("registry:rollback"))  # without htmx: redirect + message
    assert response.status_code == 302
    assert ModelVersion.objects.get(status=VersionStatus.CHAMPION) == champion


@pytest.mark.parametrize(
    ("reason", "says"), [("x" * 2001, "at most 2000 characters"), ("a\x00b", "Null characters")]
)
def test_an_override_with_an_invalid_reason_says_what_is_wrong(
    client, users, champion, reason, says
):
    """The form dropped an invalid reason and the service answered "An override needs a
    reason." to an admin who had given one."""
    worse = make_version("worse", results={"math": domain_result(20, 100)})
    client.force_login(users["admin"])
    response = client.post(
        reverse("registry:promote", args=[worse.pk]),
        {"override": "on", "reason": reason},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 422
    page = response.content.decode()
    assert says in page and "An override needs a reason." not in page
    worse.refresh_from_db()
    assert worse.status == VersionStatus.CANDIDATE and not PromotionEvent.objects.exists()


def test_the_pool_count_follows_the_filter(client, users, champion):
    make_pool_problems(users["teacher"], 20, domain="math")
    make_pool_problems(users["teacher"], 7, domain="science")
    client.force_login(users["admin"])
    math = client.get(reverse("registry:pool_count"), {"stage": "c3po-math"}).content.decode()
    both = client.get(
        reverse("registry:pool_count"), {"stage": "c3po-math", "domains": ["math", "science"]}
    ).content.decode()
    science = client.get(
        reverse("registry:pool_count"), {"stage": "c3po-code-science"}
    ).content.decode()

    def counted(html: str) -> int:
        import re

        train, held = re.findall(r"<strong>(\d+)</strong>", html)[:2]
        return int(train) + int(held)

    assert (counted(math), counted(science), counted(both)) == (20, 7, 27)


def test_launch_creates_a_job_and_shows_errors_in_the_form(
    client, users, champion, django_capture_on_commit_callbacks
):
    make_pool_problems(users["teacher"], 20)
    client.force_login(users["admin"])
    data = {"base_model": champion.pk, "stage": "c3po-math", "algorithm": "c3po", "hp_steps": 2}
    bad = client.post(reverse("registry:launch"), {**data, "hp_eps_clip": 5})
    assert bad.status_code == 422 and not TrainingJob.objects.exists()
    bad = client.post(
        reverse("registry:launch"), {**data, "hp_eps_clip": 5}, HTTP_HX_REQUEST="true"
    )
    assert bad.status_code == 422 and not TrainingJob.objects.exists()
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("registry:launch"), data, HTTP_HX_REQUEST="true")
    job = TrainingJob.objects.get()
    assert response["HX-Redirect"] == reverse("registry:job", args=[job.pk])
    assert job.hyperparameters["steps"] == 2 and job.created_by == users["admin"]


def test_the_job_page_escapes_model_output(client, users, job):
    TrainingSample.objects.create(
        job=job, step=1, prompt="<img src=x onerror=alert(1)>", completion="<script>", reward=1
    )
    client.force_login(users["admin"])
    page = client.get(reverse("registry:job", args=[job.pk])).content.decode()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;script&gt;" in page
    assert f'"/ws/training-jobs/{job.pk}/"' in page
    assert "vendor/chartjs/chart.umd.js" in page


def test_cancel_from_the_job_page(client, users, job):
    client.force_login(users["admin"])
    response = client.post(reverse("registry:cancel", args=[job.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    job.refresh_from_db()
    assert job.status == "cancelled" and job.cancel_requested


def test_the_serving_panel_says_base_plus_adapter_and_the_swap_path(client, users):
    """A worker serving a LoRA version by hot-load (worker/inference/lora.py) shows the version
    and what it is made of; the recent swaps say which way each worker went."""
    worker_id = f"view-test-{uuid.uuid4().hex[:6]}"
    beat = {
        "worker_id": worker_id,
        "state": "serving",
        "model_version": "ring-tiny-lora-v7",
        "serving": {
            "base": "ring-tiny",
            "adapter": {"label": "ring-tiny-lora-v7", "path": "/x/adapter", "id": 3},
            "lora": True,
        },
    }
    swap = {"worker_id": worker_id, "label": "ring-tiny-lora-v7", "ok": True, "seconds": 1.5}
    swap["swap_path"] = "lora-hot-load"
    redis = redis_client()
    with redis.pipeline() as pipe:
        heartbeat_queue(pipe, worker_id, beat, 60)
        pipe.execute()
    redis.lpush(SWAP_LOG_KEY, json.dumps(swap))
    try:
        client.force_login(users["admin"])
        page = client.get(reverse("registry:serving")).content.decode()
    finally:
        with redis.pipeline() as pipe:
            heartbeat_forget(pipe, worker_id)
            pipe.execute()
        redis.lrem(SWAP_LOG_KEY, 1, json.dumps(swap))
    assert "ring-tiny + adapter ring-tiny-lora-v7 (LoRA hot-load)" in page
    assert f"{worker_id} → ring-tiny-lora-v7 by lora-hot-load" in page
