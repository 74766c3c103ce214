"""Shared Redis connection pools for the site's own Redis use (health, queue depth, heartbeats, the
generation event logs that pages follow).

Channels and Celery keep their own connections. `redis_client` is the synchronous pool (views,
services); `async_redis_client` is the asyncio one for consumers, one per event loop because
asyncio connections belong to the loop that opened them (uvicorn runs one; tests run many).
"""

import asyncio
import weakref
from functools import cache

import redis
import redis.asyncio as aioredis
from django.conf import settings

from inference_contract.redis_retry import async_retry_options, retry_options

_async_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis]" = (
    weakref.WeakKeyDictionary()
)


@cache
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=2,
        socket_timeout=5,
        decode_responses=True,
        **retry_options(),  # a Redis restart makes a queue push wait, not vanish
    )


def async_redis_client() -> aioredis.Redis:
    """The running loop's asyncio client (no socket timeout: consumers block in XREAD)."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = aioredis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=2, decode_responses=True,
            **async_retry_options(),
        )  # fmt: skip
        _async_clients[loop] = client
    return client
