"""The site's one way to check an answer or a reference answer typed by someone: bounded in time.

Every web view, Celery task and the inference worker's grading call these two functions, never
`training.answers` directly: they settle numbers, fractions and choice letters in-process, and run
anything that needs math-verify in `training.answer_pool`'s worker processes under the hard
wall-clock limit `ANSWER_CHECK_TIMEOUT_SECONDS` (`ANSWER_CHECK_WORKERS` processes per server
process). A check that runs out of time is "couldn't check", never a hung request.

The workers are shared by every caller of the process, so when all are busy (many accounts
checking at once) a check waits its turn, first come first served, for at most
`ANSWER_CHECK_WAIT_SECONDS`, then is "couldn't check right now" (None, like running out of time):
a request's check takes at most `ANSWER_CHECK_WAIT_SECONDS + ANSWER_CHECK_TIMEOUT_SECONDS`.
"""

from __future__ import annotations

from django.conf import settings

from training.answer_pool import (
    REFERENCE_PATIENCE_S,
    UNAVAILABLE_REFERENCE,
    AnswerCheckPool,
    bounded_reference_check,
    bounded_verify,
    shared_pool,
)

# REFERENCE_PATIENCE_S: how long a reference answer read by a Celery task (no request waits on it)
# may wait for a free checker of its own process's pool.
__all__ = [
    "REFERENCE_PATIENCE_S",
    "UNAVAILABLE_REFERENCE",
    "answer_verdict",
    "longest_check_seconds",
    "reference_problem",
]


def _pool() -> AnswerCheckPool:
    return shared_pool(
        workers=settings.ANSWER_CHECK_WORKERS,
        timeout_s=settings.ANSWER_CHECK_TIMEOUT_SECONDS,
        wait_s=settings.ANSWER_CHECK_WAIT_SECONDS,
    )


def longest_check_seconds() -> float:
    """The longest a check in a request takes: its turn for a free checker, then its reply."""
    return settings.ANSWER_CHECK_WAIT_SECONDS + settings.ANSWER_CHECK_TIMEOUT_SECONDS


def answer_verdict(
    *,
    reference: str,
    answer: str | None,
    kind: str,
    tolerance: float | None = None,
    unit: str | None = None,
    options: list[str] | None = None,
) -> bool | None:
    """True when `answer` matches `reference`, False when it does not, None when the checker could
    not finish in time, or no checker was free within `ANSWER_CHECK_WAIT_SECONDS`."""
    return bounded_verify(
        _pool(), reference, answer, kind=kind, tolerance=tolerance, unit=unit, options=options
    )


def reference_problem(
    reference: str,
    kind: str,
    *,
    options: list[str] | None = None,
    patience_s: float | None = None,
) -> str | None:
    """None when the checker can read a teacher's reference answer; otherwise why it cannot
    (running out of time is one reason). A check that found no checker free within `patience_s`
    (None: `ANSWER_CHECK_WAIT_SECONDS`, for a request; 0: only a checker free at once; a Celery
    task: `REFERENCE_PATIENCE_S`) returns `UNAVAILABLE_REFERENCE`."""
    return bounded_reference_check(_pool(), reference, kind, options=options, patience_s=patience_s)
