"""The site's one way to check an answer or a reference answer typed by someone: bounded in time.

Every web view, Celery task and the inference worker's grading call these two functions, never
`training.answers` directly: they settle numbers, fractions and choice letters in-process, and run
anything that needs math-verify in `training.answer_pool`'s worker processes under the hard
wall-clock limit `ANSWER_CHECK_TIMEOUT_SECONDS` (`ANSWER_CHECK_WORKERS` processes per server
process). A check that runs out of time is "couldn't check", never a hung request.
"""

from __future__ import annotations

from django.conf import settings

from training.answer_pool import bounded_reference_check, bounded_verify, shared_pool


def _pool():
    return shared_pool(
        workers=settings.ANSWER_CHECK_WORKERS, timeout_s=settings.ANSWER_CHECK_TIMEOUT_SECONDS
    )


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
    not finish in time."""
    return bounded_verify(
        _pool(), reference, answer, kind=kind, tolerance=tolerance, unit=unit, options=options
    )


def reference_problem(reference: str, kind: str, *, options: list[str] | None = None) -> str | None:
    """None when the checker can read a teacher's reference answer; otherwise why it cannot
    (running out of time is one reason)."""
    return bounded_reference_check(_pool(), reference, kind, options=options)
