"""The launch form's memory plan (training/plan.py through the bridge): shown on the form, and a
job whose plan does not fit a training device is refused with the numbers and what would fit."""

import json

import pytest

import ringmodel as rm
from tests.webapp.registry.factories import make_pool_problems, make_version
from webapp.accounts.services import user_create
from webapp.core.errors import ServiceError
from webapp.registry.models import TrainingJob, VersionStatus
from webapp.registry.training_jobs.launch_form import LaunchJobForm
from webapp.registry.training_jobs.services import training_job_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin():
    return user_create(username="plan-admin", password="x", role="admin", validate=False)


@pytest.fixture
def base(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "config.json").write_text(json.dumps(rm.RING_TINY_CONFIG))
    version = make_version("base", status=VersionStatus.CHAMPION)
    version.path = str(tmp_path / "base")
    version.save()
    return version


def create(admin, base, **hyperparameters):
    return training_job_create(
        created_by=admin,
        base_model=base,
        stage="c3po-math",
        algorithm="c3po",
        hyperparameters={"steps": 2, **hyperparameters},
        problem_filter={},
    )


def test_a_job_that_fits_is_queued(admin, base, settings):
    make_pool_problems(admin, 20)
    settings.TRAINING_DEVICE_MEMORY_GIB = 8
    job = create(admin, base)
    assert TrainingJob.objects.filter(pk=job.pk).exists()


def test_a_job_that_cannot_fit_is_refused_with_the_numbers_and_what_would(admin, base, settings):
    make_pool_problems(admin, 20)
    settings.TRAINING_DEVICE_MEMORY_GIB = 0.5
    with pytest.raises(ServiceError) as refused:
        create(admin, base, micro_batch_size=256, prompts_per_step=32, group_size=16)
    assert refused.value.code == "does_not_fit"
    message = refused.value.message
    assert "GiB per device" in message and "0.5 GiB usable" in message
    assert "smallest setup that fits: micro-batch 1" in message
    assert not TrainingJob.objects.exists()


def test_the_launch_form_shows_the_plan_for_the_champion(admin, base, settings):
    settings.TRAINING_DEVICE_MEMORY_GIB = 8
    summary = LaunchJobForm().plan_summary()
    assert summary is not None and summary["fits"] and summary["mode"] == "full"
    names = [name for name, _ in summary["rows"]]
    assert "AdamW state (sharded)" in names and "activations (one micro-batch)" in names
    lora = LaunchJobForm(
        data={"base_model": base.pk, "stage": "c3po-math", "algorithm": "c3po", "hp_lora_rank": 8}
    )
    lora.is_valid()
    assert lora.plan_summary()["mode"] == "lora"
