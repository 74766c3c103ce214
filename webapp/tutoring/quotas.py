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


def _frees_at(counted, *, used: int, limit: int, span: timedelta) -> datetime | None:
    """When a full window has room again: once enough of its oldest requests have aged out."""
    if used < limit or limit <= 0:
        return None  # room left, or a quota of 0: no request fits whatever ages out
    oldest = counted.order_by("queued_at").values_list("queued_at", flat=True)
    return oldest[max(used - limit, 0)] + span


def generation_quota(*, user: User) -> GenerationQuota:
    """The student's use of both windows and their active generations, in one query (a second
    only when a window is full)."""
    now = timezone.now()
    counted = ~Q(status=GenerationStatus.FAILED)
    spans = {"hour": HOUR, "day": DAY}
    limits = {"hour": settings.GENERATION_QUOTA_PER_HOUR, "day": settings.GENERATION_QUOTA_PER_DAY}
    in_window = {name: counted & Q(queued_at__gte=now - span) for name, span in spans.items()}
    is_active = Q(status__in=ACTIVE_GENERATION_STATUSES)
    mine = Generation.objects.filter(attempt__student_id=user.pk)
    used = mine.filter(in_window["day"] | is_active).aggregate(
        **{name: Count("pk", filter=window) for name, window in in_window.items()},
        active=Count("pk", filter=is_active),
    )
    windows = {
        name: QuotaWindow(
            used=used[name],
            limit=limits[name],
            frees_at=_frees_at(
                mine.filter(in_window[name]), used=used[name], limit=limits[name], span=span
            ),
        )
        for name, span in spans.items()
    }
    return GenerationQuota(
        exempt=bool(getattr(user, "is_site_admin", False)),
        hour=windows["hour"],
        day=windows["day"],
        active=used["active"],
    )
