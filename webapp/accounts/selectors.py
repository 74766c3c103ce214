"""Reads for the admin's teacher review: teachers by approval state, with what they have made."""

from __future__ import annotations

from django.db.models import Count, QuerySet

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
