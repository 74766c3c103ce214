"""The one error type for expected failures.

Services raise `ServiceError` with a message written for the person using the site; the edges (views,
consumers, tasks) turn it into a form error, a 4xx response or an `error` websocket event. Anything
else is unexpected: it is logged with context and never shown raw to a student.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime


class ServiceError(Exception):
    """An expected failure whose message is safe and useful to show to the user. A refusal by a
    rate limit (status 429) may say when the next request fits (`retry_at`), which the edges send
    as `Retry-After`."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid",
        status: int = 400,
        retry_at: datetime | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.retry_at = retry_at
