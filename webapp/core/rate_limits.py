"""Redis-backed fixed-window counters, for limits that are not log-in failures (sign-ups per address).

A `WindowLimit` counts events per key in calendar-aligned windows (the current hour, the current
day): one Redis key per key and window, created with an expiry of the window's end, so a counter
costs one round trip and cleans itself up. `blocked_until` says when the first full window ends
(None: there is room); `record` counts one event in every window. Redis trouble never blocks a
request: the limit is then not applied and a warning is logged.
"""

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from axes.helpers import get_client_ip_address
from django.http import HttpRequest

from webapp.core.redis_client import redis_client

logger = logging.getLogger(__name__)

KEY_PREFIX = "ringtutor:limit"


@dataclass(frozen=True)
class Window:
    limit: int
    seconds: int


class WindowLimit:
    def __init__(self, name: str, windows: list[Window]) -> None:
        self.name = name
        self.windows = windows

    def _keys(self, key: str, now: float) -> list[tuple[Window, str, int]]:
        """(window, Redis key, end of the current window as a Unix time) for each window."""
        found = []
        for window in self.windows:
            index = int(now // window.seconds)
            redis_key = f"{KEY_PREFIX}:{self.name}:{window.seconds}:{index}:{key}"
            found.append((window, redis_key, (index + 1) * window.seconds))
        return found

    def blocked_until(self, key: str) -> datetime | None:
        """The end of the latest full window for `key`, or None when another event is allowed."""
        keys = self._keys(key, time.time())
        try:
            counts = redis_client().mget([redis_key for _, redis_key, _ in keys])
        except Exception:  # noqa: BLE001 - a limiter must not take the page down with Redis
            logger.warning("rate limit %s not checked: Redis is unavailable", self.name)
            return None
        ends = [
            end
            for (window, _, end), count in zip(keys, counts, strict=True)
            if window.limit <= 0 or int(count or 0) >= window.limit
        ]
        return datetime.fromtimestamp(max(ends), tz=UTC) if ends else None

    def record(self, key: str) -> None:
        """Count one event for `key` in every window."""
        now = time.time()
        try:
            pipe = redis_client().pipeline()
            for _, redis_key, end in self._keys(key, now):
                pipe.incr(redis_key)
                pipe.expireat(redis_key, end + 60)
            pipe.execute()
        except Exception:  # noqa: BLE001
            logger.warning("rate limit %s not recorded: Redis is unavailable", self.name)


def client_address(request: HttpRequest) -> str:
    """The client's address as django-axes resolves it (the same proxy settings), or "unknown"."""
    return get_client_ip_address(request) or "unknown"
