"""Reads for accounts: the log-in lockouts in force now, for the admins' lockout page."""

from dataclasses import dataclass
from datetime import datetime

from axes.helpers import get_cool_off
from axes.models import AccessAttempt
from django.db.models import Sum
from django.utils import timezone

from webapp.accounts.lockout import ACCOUNT, ADDRESS, failure_limits, lock_end

LOCKOUT_FIELDS = {"account": ACCOUNT, "address": ADDRESS}


@dataclass(frozen=True)
class Lockout:
    """A locked account (kind "account", value the username) or address (kind "address")."""

    kind: str
    value: str
    failures: int
    ends_at: datetime


def lockouts_current() -> list[Lockout]:
    """Every account and address locked out now, the one whose lock ends last first."""
    recent = AccessAttempt.objects.filter(attempt_time__gte=timezone.now() - get_cool_off())
    limits = failure_limits()
    found = []
    for kind, field in LOCKOUT_FIELDS.items():
        groups = (
            recent.exclude(**{f"{field}__isnull": True})
            .values(field)
            .annotate(total=Sum("failures_since_start"))
            .filter(total__gte=limits[field])
        )
        for group in groups:
            rows = recent.filter(**{field: group[field]}).values_list(
                "attempt_time", "failures_since_start"
            )
            ends_at = lock_end(list(rows), limits[field])
            if ends_at is not None:
                found.append(
                    Lockout(
                        kind=kind,
                        value=group[field],
                        failures=group["total"],
                        ends_at=timezone.localtime(ends_at),
                    )
                )
    return sorted(found, key=lambda lockout: lockout.ends_at, reverse=True)
