"""The launch form's memory plan in real Chromium: the admin sees, per device, what the job will
need (training/plan.py) before launching, and a job that cannot fit is refused with the numbers.
Set UPDATE_DOCS_SCREENSHOTS=1 to refresh docs/images/launch-plan.png from this run."""

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.webapp.registry.conftest import write_tiny_checkpoint
from tests.webapp.registry.factories import make_pool_problems
from webapp.registry.models import ModelVersion, TrainingJob, VersionStatus

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_the_launch_form_shows_the_plan_and_refuses_a_job_that_cannot_fit(
    demo_users, live_site, page, login, settings, tmp_path
):
    # The live server reads this host's RAM as the device memory (TRAINING_DEVICE_MEMORY_GIB 0);
    # 1024 responses per micro-batch need ~29 GiB of activations, more than this machine has.
    settings.CHECKPOINT_DIR = tmp_path / "store"
    make_pool_problems(demo_users["teacher"], 16)
    base = write_tiny_checkpoint(tmp_path / "tiny-base")
    ModelVersion.objects.create(label="tiny-base", path=str(base), status=VersionStatus.CHAMPION)
    login(page, "admin")
    form = page.locator("#launch")
    plan = form.locator("details.plan")
    expect(plan).to_contain_text("Memory plan per device")
    expect(plan).to_contain_text("fits")
    plan.locator("summary").click()
    expect(plan.get_by_text("AdamW state (sharded)")).to_be_visible()

    form.locator("[name=hp_micro_batch_size]").fill("1024")
    form.locator("[name=hp_prompts_per_step]").fill("64")
    form.locator("[name=hp_group_size]").fill("16")
    form.get_by_role("button", name="Launch job").click()
    errors = page.locator("#launch .form-errors")
    expect(errors).to_contain_text("GiB per device")
    expect(errors).to_contain_text("The smallest setup that fits: micro-batch 1")
    expect(page.locator("#launch details.plan")).to_contain_text("does not fit")
    assert not TrainingJob.objects.exists()
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS"):
        page.locator("#launch").screenshot(path=str(ROOT / "docs" / "images" / "launch-plan.png"))
