"""One shared Redis connection pool for the site's own Redis use (health, queue depth, heartbeats).

Channels and Celery keep their own connections; this one is for the few direct reads the site makes.
"""

from functools import cache

import redis
from django.conf import settings

from worker.redis_retry import retry_options


@cache
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=2,
        socket_timeout=5,
        decode_responses=True,
        **retry_options(),  # a Redis restart makes a queue push wait, not vanish
    )
