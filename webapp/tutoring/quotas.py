"""Generation quotas: how many hints and solutions a student may ask for per hour and per day.

Counted from the student's own generation rows over sliding windows (the last hour, the last 24
hours), so the count is exact and needs no second store: `generation_enqueue` reads it while it
holds the student's row lock, and the request it allows is the row it creates. A generation that
failed on the site's side does not count; one the student stopped does (it was queued and may have
used the engine). Site admins are exempt. GENERATION_QUOTA_PER_HOUR / _PER_DAY set the limits.

The same statement counts the student's generations queued or running now (`active`: the
concurrency limit, which `generation_enqueue` checks first), so queueing a generation reads all
its limits in one query.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from webapp.tutoring.models import ACTIVE_GENERATION_STATUSES, Generation, GenerationStatus

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from webapp.accounts.models import User

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class QuotaWindow:
    used: int
    limit: int
    frees_at: datetime | None  # when the next request fits again, if the window is full

    @property
    def full(self) -> bool:
        return self.used >= self.limit


@dataclass(frozen=True)
class GenerationQuota:
    exempt: bool
    hour: QuotaWindow
    day: QuotaWindow
    active: int = 0  # queued or running now, whenever queued

    @property
    def windows(self) -> tuple[QuotaWindow, QuotaWindow]:
        return (self.hour, self.day)

    @property
    def exhausted(self) -> QuotaWindow | None:
        """The full window that frees up last, or None while another request fits."""
        if self.exempt:
            return None
        full = [w for w in self.windows if w.full]
        return max(full, key=lambda w: w.frees_at or timezone.now()) if full else None

    @property
    def visible(self) -> bool:
        """Whether the page shows the counter: once either window is past the configured share."""
        share = settings.GENERATION_QUOTA_SHOW_FRACTION
        return not self.exempt and any(w.used >= share * w.limit for w in self.windows)

    def after_one_more(self) -> GenerationQuota | None:
        """The quota once one more request is stored, as `generation_quota` would read it then;
        None when that request fills a window (when it frees up needs a query: read it again)."""
        hour, day = (replace(window, used=window.used + 1) for window in self.windows)
        if hour.full or day.full:
            return None  # (a window with room has no frees_at: nothing else changes)
        return replace(self, hour=hour, day=day, active=self.active + 1)

    def refusal_message(self) -> str:
        window = self.exhausted
        if window is None:
            return ""
        when = timezone.localtime(window.frees_at) if window.frees_at else None
        retry = f" You can ask again at {when:%H:%M %Z}." if when else ""
        span = "in the last hour" if window is self.hour else "in the last 24 hours"
        return (
            f"You have asked for {window.used} hints and solutions {span}, the most the site "
            f"allows ({window.limit}).{retry} Meanwhile, try the next step yourself!"
        )


def sliding_windows(
    rows: QuerySet,
    *,
    time_field: str,
    spans: dict[str, timedelta],
    limits: dict[str, int],
    counted: Q | None = None,
    also: dict[str, Q] | None = None,
) -> tuple[dict[str, QuotaWindow], dict[str, int]]:
    """A student's use of sliding windows over their own `rows` (each `spans[name]` back from now,
    on `time_field`, of the rows `counted`), and the count of each `also` condition, in one
    query; a second per full window, for when it frees up. The one way the site counts a
    student's requests against a limit (generations here, own answers in answer_limits)."""
    now = timezone.now()
    also = also or {}
    in_window = {
        name: (counted or Q()) & Q(**{f"{time_field}__gte": now - span})
        for name, span in spans.items()
    }
    scope = in_window[max(spans, key=lambda name: spans[name])]  # the widest holds the others
    for condition in also.values():
        scope |= condition
    used = rows.filter(scope).aggregate(
        **{name: Count("pk", filter=condition) for name, condition in {**in_window, **also}.items()}
    )
    windows = {}
    for name, span in spans.items():
        frees_at = None
        if used[name] >= limits[name] > 0:
            # Room again once enough of the window's oldest rows have aged out (a limit of 0
            # never has room, whatever ages out).
            oldest = rows.filter(in_window[name]).order_by(time_field)
            moment = oldest.values_list(time_field, flat=True)[used[name] - limits[name]]
            frees_at = moment + span
        windows[name] = QuotaWindow(used=used[name], limit=limits[name], frees_at=frees_at)
    return windows, {name: used[name] for name in also}


def generation_quota(*, user: User) -> GenerationQuota:
    """The student's use of both windows and their active generations, in one query (a second
    only when a window is full)."""
    is_active = Q(status__in=ACTIVE_GENERATION_STATUSES)
    windows, counts = sliding_windows(
        Generation.objects.filter(attempt__student_id=user.pk),
        time_field="queued_at",
        spans={"hour": HOUR, "day": DAY},
        limits={
            "hour": settings.GENERATION_QUOTA_PER_HOUR,
            "day": settings.GENERATION_QUOTA_PER_DAY,
        },
        counted=~Q(status=GenerationStatus.FAILED),
        also={"active": is_active},
    )
    return GenerationQuota(
        exempt=bool(getattr(user, "is_site_admin", False)),
        hour=windows["hour"],
        day=windows["day"],
        active=counts["active"],
    )
