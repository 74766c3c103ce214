"""Reads for accounts: teachers by approval state for the admin's teacher review, and the log-in
lockouts in force now for the admins' lockout page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from axes.helpers import get_cool_off
from axes.models import AccessAttempt
from django.db.models import Count, QuerySet, Sum
from django.utils import timezone

from webapp.accounts.lockout import ACCOUNT, ADDRESS, failure_limits, lock_end
from webapp.accounts.models import Role, TeacherStatus, User


def teacher_review_list(*, status: str) -> QuerySet[User]:
    """Teachers in one approval state with `set_count`, `problem_count` and `class_count`;
    pending ones oldest first (first come, first reviewed), the others newest decision first."""
    teachers = (
        User.objects.filter(role=Role.TEACHER, teacher_status=status)
        .select_related("teacher_reviewed_by")
        .annotate(
            set_count=Count("problem_sets", distinct=True),
            problem_count=Count("problem_sets__problems", distinct=True),
            class_count=Count("classrooms", distinct=True),
        )
    )
    if status == TeacherStatus.PENDING:
        return teachers.order_by("date_joined", "id")
    return teachers.order_by("-teacher_reviewed_at", "-date_joined", "-id")


def teacher_status_counts() -> dict[str, int]:
    """How many teachers are in each approval state (every state present, zeros included)."""
    counts = dict.fromkeys(TeacherStatus.values, 0)
    rows = (
        User.objects.filter(role=Role.TEACHER)
        .values_list("teacher_status")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts.update(dict(rows))
    return counts


def teacher_get(*, teacher_id: int) -> User | None:
    return User.objects.filter(pk=teacher_id, role=Role.TEACHER).first()


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
