"""How every Ring Tutor Redis client rides out a Redis restart: retry on a fresh connection.

redis-py's clients made with `from_url` do not retry by default (the pool's connections get no
retry policy), so the first command after a Redis restart failed on its stale pooled connection
("Connection closed by server"): the worker failed the answer it was flushing, and the site lost
the queue push of a question asked at that moment. With these options a command that meets a
closed or refused connection reconnects and is sent again, with a growing pause (0.1 s up to 1 s)
for about 12 seconds in all, so a Redis restart of a few seconds makes commands wait,
not fail. Every command the site and the worker send is safe to repeat: appends are fenced by
sequence numbers on the reader's side, and the rest are idempotent writes or reads.
"""

from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError
from redis.retry import Retry

# 0.1 + 0.2 + 0.4 + 0.8 + 1 s × 11: about 12.5 s of trying before a command fails.
RETRIES = 15


def _backoff() -> ExponentialBackoff:
    return ExponentialBackoff(cap=1.0, base=0.05)


def retry_options() -> dict:
    """Keyword arguments for `redis.Redis.from_url`."""
    return {"retry": Retry(_backoff(), RETRIES), "retry_on_error": [ConnectionError, TimeoutError]}


def async_retry_options() -> dict:
    """Keyword arguments for `redis.asyncio.Redis.from_url`."""
    return {
        "retry": AsyncRetry(_backoff(), RETRIES),
        "retry_on_error": [ConnectionError, TimeoutError],
    }
