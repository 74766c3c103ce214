"""Fixtures of the worker's unit tests (test_worker.py, test_lora_swap.py): a student and a
problem in the test database, a worker configuration with a private request queue, a Redis
client."""

import dataclasses
import uuid

import pytest
import redis.asyncio as aioredis
from django.conf import settings

from webapp.accounts.services import user_create
from webapp.problems.content_key import problem_content_key
from webapp.problems.models import Problem
from worker.inference.config import config_from_settings


@pytest.fixture
def student(transactional_db):
    return user_create(username=f"s-{uuid.uuid4().hex[:6]}", password="x", validate=False)


@pytest.fixture
def problem(transactional_db):
    statement = "Compute 47 + 38."
    return Problem.objects.create(
        statement=statement,
        content_key=problem_content_key(statement),
        answer_kind="number",
        reference_answer="85",
    )


@pytest.fixture
def config():
    tag = uuid.uuid4().hex[:8]
    base = config_from_settings()
    return base.with_overrides(
        worker_id=f"unit-{tag}",
        redis_url=settings.REDIS_URL,
        stream=f"test:{tag}:generations",
        group=f"test-{tag}",
        fallback_model="v1-path",
        engine=dataclasses.replace(base.engine, max_model_len=400, max_num_seqs=8),
        sampling=dataclasses.replace(base.sampling, max_new_tokens=300),
        flush_interval_ms=20,
        heartbeat_interval_s=0.2,
        claim_min_idle_ms=400,
        reconcile_interval_s=0,
        freeze_gc=False,  # the worker shares pytest's process here
        keep_off_engine_cpus=False,  # the same: nothing may move pytest's threads
    )


@pytest.fixture
async def aredis(config):
    client = aioredis.Redis.from_url(config.redis_url, decode_responses=True)
    yield client
    await client.delete(config.stream)
    await client.aclose()
