"""Fixtures for the inference worker's tests: an asyncio Redis client on the test database and
Redis names private to each test, so tests never see each other's streams."""

import os
import uuid

import pytest
import redis.asyncio as aioredis


@pytest.fixture
def redis_test_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/5")


@pytest.fixture
async def aredis(redis_test_url):
    client = aioredis.Redis.from_url(redis_test_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]
