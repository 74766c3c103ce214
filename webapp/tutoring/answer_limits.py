"""Limits on a student's own answer checks, so one account cannot keep the answer checker busy.

An answer that needs the symbolic checker holds one of the few `ANSWER_CHECK_WORKERS` processes of
its server process for up to `ANSWER_CHECK_TIMEOUT_SECONDS`; a script sending `(999*999)!` back to
back with one account used to hold every one of them, and every other student's symbolic answer
came back "couldn't check". `own_answer_create` (webapp.tutoring.services) applies three limits,
inside one transaction, before the answer is checked:

1. **One check at a time per student**, across every server process: a PostgreSQL advisory lock on
   the student, taken without waiting (`webapp.core.locks.advisory_xact_lock`) and held until
   the answer's row is committed. A second answer sent while one is being checked is refused at
   once instead of waiting: a waiting request would hold a thread and a pooled database
   connection, so a burst from one account could still starve the others. So one account holds
   at most one checker process at a time, and the count below is exact (two tabs cannot both
   take the last place).
2. **Answers per student per minute and per hour** (`OWN_ANSWER_CHECKS_PER_MINUTE`,
   `OWN_ANSWER_CHECKS_PER_HOUR`), sliding windows. Site admins are exempt, as from the generation
   quota (webapp.tutoring.quotas).
3. **Answers kept per attempt** (`OWN_ANSWERS_PER_ATTEMPT`): the rows of one attempt no longer grow
   without bound.

Counted in the database rather than in Redis (where the sign-up limit keeps its counters): the
`OwnAnswer` rows already exist and are the truth (a refused answer stores nothing, so it is not
counted, and one that "couldn't check" is stored, so it is), the count is exact under the advisory
lock, nothing drifts when a transaction rolls back or Redis is flushed, and the limit does not
lapse while Redis is unreachable, which is when a flood would do the most harm. The cost is one
count over the student's own answers of the last hour (and the attempt's) per answer, a second
only when a window is full.

A refusal is a `ServiceError` with status 429 and `retry_at`, the moment the next answer fits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from webapp.core.answer_checks import longest_check_seconds
from webapp.core.errors import ServiceError
from webapp.core.locks import advisory_xact_lock
from webapp.tutoring.models import Attempt, OwnAnswer
from webapp.tutoring.quotas import QuotaWindow, sliding_windows

if TYPE_CHECKING:
    from webapp.accounts.models import User

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
# The two-key form of PostgreSQL's advisory locks: this constant names "a student's answer check",
# the second key is the student (its own lock space: no clash with one-key locks such as the
# registry's promotion lock).
CHECK_LOCK_CLASS = 7_201_606
KEPT = "What you typed has not been saved, so you can check it then."


def checker_lock_keys(user_id: int) -> tuple[int, int]:
    """The advisory lock that says "this student's answer is being checked" (both int4)."""
    return CHECK_LOCK_CLASS, user_id & 0x7FFF_FFFF


def hold_answer_check(*, user: User) -> None:
    """Take the student's check lock for the current transaction, or refuse (429) at once when
    another of their answers is being checked (another tab, another server process)."""
    # Where the site runs on SQLite (local, one process) this holds nothing: the limits still
    # apply, but two tabs at the same moment may both pass them.
    taken = advisory_xact_lock(*checker_lock_keys(user.pk), wait=False)
    if not taken:
        raise ServiceError(
            "Your previous answer is still being checked. Wait for its result (a few "
            f"seconds at most), then check this one. {KEPT}",
            code="answer_check_busy",
            status=429,
            retry_at=timezone.now() + timedelta(seconds=math.ceil(longest_check_seconds())),
        )


@dataclass(frozen=True)
class OwnAnswerLimits:
    exempt: bool
    minute: QuotaWindow
    hour: QuotaWindow
    attempt_used: int
    attempt_limit: int

    def refusal(self) -> ServiceError | None:
        """Why the next answer is refused (429), or None when it may be checked."""
        if self.attempt_used >= self.attempt_limit:
            return ServiceError(
                f"This attempt already has {self.attempt_used} answers, the most one attempt "
                "keeps. Compare your working with a hint or the worked solution, or start the "
                "problem again for a fresh attempt.",
                code="own_answers_full",
                status=429,
            )
        if self.exempt:
            return None
        full = [window for window in (self.minute, self.hour) if window.full]
        if not full:
            return None
        # The window that frees up last decides when the next answer fits.
        window = max(full, key=lambda w: w.frees_at or timezone.now())
        span = "in the last minute" if window is self.minute else "in the last hour"
        when = timezone.localtime(window.frees_at) if window.frees_at else None
        if when is None:
            retry = " Answers cannot be checked here at the moment."
        elif window is self.minute:
            seconds = max(1, math.ceil((when - timezone.now()).total_seconds()))
            retry = f" You can check again in {seconds} s (at {when:%H:%M:%S %Z})."
        else:
            retry = f" You can check again at {when:%H:%M %Z}."
        answers = "1 answer" if window.used == 1 else f"{window.used} answers"
        return ServiceError(
            f"You have checked {answers} {span}, the most the site allows "
            f"({window.limit}).{retry} {KEPT}",
            code="answer_rate_limited",
            status=429,
            retry_at=window.frees_at,
        )


def own_answer_limits(*, user: User, attempt: Attempt) -> OwnAnswerLimits:
    """The student's answers in the last minute and hour and the attempt's answers, in one query
    (a second only when a window is full)."""
    in_attempt = Q(attempt_id=attempt.pk)
    windows, counts = sliding_windows(
        OwnAnswer.objects.filter(attempt__student_id=user.pk),
        time_field="created_at",
        spans={"minute": MINUTE, "hour": HOUR},
        limits={
            "minute": settings.OWN_ANSWER_CHECKS_PER_MINUTE,
            "hour": settings.OWN_ANSWER_CHECKS_PER_HOUR,
        },
        also={"attempt": in_attempt},
    )
    return OwnAnswerLimits(
        exempt=bool(getattr(user, "is_site_admin", False)),
        minute=windows["minute"],
        hour=windows["hour"],
        attempt_used=counts["attempt"],
        attempt_limit=settings.OWN_ANSWERS_PER_ATTEMPT,
    )
