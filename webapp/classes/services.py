"""Writes for classes: create and rename a class, join codes, joining and removing students,
assigning problem sets with a due date.

A teacher may only assign their own sets, and only touch their own classes; anyone else's class
is "not found". Only student accounts join classes. A teacher an admin has not approved yet
cannot create a class or assign a set (`ensure_may_publish`): classes are how a teacher reaches
students.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction

from webapp.classes.join_codes import draw_join_code, normalise_join_code
from webapp.classes.models import Assignment, Classroom, Enrollment
from webapp.core.errors import ServiceError
from webapp.core.roles import ensure_may_publish
from webapp.core.user_text import is_blank, normalise_user_text
from webapp.problems.models import ProblemSet

if TYPE_CHECKING:
    from webapp.accounts.models import User


def _not_found(what: str) -> ServiceError:
    return ServiceError(f"That {what} does not exist.", code="not_found", status=404)


def _ensure_teacher_of(classroom: Classroom, teacher) -> None:
    if classroom.teacher_id != teacher.pk:
        raise _not_found("class")


def _new_join_code() -> str:
    for _ in range(20):
        code = draw_join_code()
        if not Classroom.objects.filter(join_code=code).exists():
            return code
    raise ServiceError("Could not make a new join code; try again.", code="code_exhausted")


def _class_name(name: str) -> str:
    """A class name as stored. Without direction controls (webapp.core.user_text): it is shown to
    students among other classes' names, where an override could make it read as another's."""
    name = normalise_user_text(name)
    if is_blank(name):
        raise ServiceError("Give the class a name.", code="empty_name")
    return name[:200]


def classroom_create(*, teacher: User, name: str) -> Classroom:
    ensure_may_publish(teacher)
    name = _class_name(name)
    for _ in range(3):  # a code taken between the check and the insert: draw another
        try:
            with transaction.atomic():
                return Classroom.objects.create(
                    teacher=teacher, name=name, join_code=_new_join_code()
                )
        except IntegrityError:
            continue
    raise ServiceError("Could not make a join code; try again.", code="code_exhausted")


def classroom_rename(*, classroom: Classroom, teacher: User, name: str) -> Classroom:
    _ensure_teacher_of(classroom, teacher)
    classroom.name = _class_name(name)
    classroom.save(update_fields=["name"])
    return classroom


def classroom_join_code_renew(*, classroom: Classroom, teacher: User) -> Classroom:
    """A new code (the old one stops working), e.g. when a code leaked beyond the class."""
    _ensure_teacher_of(classroom, teacher)
    classroom.join_code = _new_join_code()
    classroom.save(update_fields=["join_code"])
    return classroom


def classroom_delete(*, classroom: Classroom, teacher: User) -> None:
    _ensure_teacher_of(classroom, teacher)
    classroom.delete()


def enrollment_join(*, student: User, code: str) -> tuple[Enrollment, bool]:
    """Enrol a student in the class with this code; (enrollment, created). Joining twice is fine."""
    if not getattr(student, "is_student", False):
        raise ServiceError(
            "Only student accounts join classes. Log in as a student to use a join code.",
            code="not_student",
            status=403,
        )
    normalised = normalise_join_code(code)
    if not normalised:
        raise ServiceError("Type the join code your teacher gave you.", code="empty_code")
    classroom = Classroom.objects.filter(join_code=normalised).first()
    if classroom is None:
        raise ServiceError(
            f"No class has the code “{normalised}”. Check it with your teacher.",
            code="unknown_code",
            status=404,
        )
    return Enrollment.objects.get_or_create(classroom=classroom, student=student)


def enrollment_remove(*, classroom: Classroom, teacher: User, student_id: int) -> None:
    """Take a student off the roster; their attempts stay in their own history."""
    _ensure_teacher_of(classroom, teacher)
    deleted, _ = Enrollment.objects.filter(classroom=classroom, student_id=student_id).delete()
    if not deleted:
        raise _not_found("student in this class")


def assignment_create(
    *, classroom: Classroom, teacher: User, problem_set: ProblemSet, due_at: datetime | None = None
) -> Assignment:
    _ensure_teacher_of(classroom, teacher)
    ensure_may_publish(teacher)
    if problem_set.owner_id != teacher.pk:
        raise _not_found("problem set")
    if Assignment.objects.filter(classroom=classroom, problem_set=problem_set).exists():
        raise ServiceError(
            f"“{problem_set.title}” is already assigned to {classroom.name}; change its due date "
            "instead.",
            code="already_assigned",
        )
    return Assignment.objects.create(classroom=classroom, problem_set=problem_set, due_at=due_at)


def assignment_due_update(
    *, assignment: Assignment, teacher: User, due_at: datetime | None
) -> Assignment:
    _ensure_teacher_of(assignment.classroom, teacher)
    assignment.due_at = due_at
    assignment.save(update_fields=["due_at"])
    return assignment


def assignment_delete(*, assignment: Assignment, teacher: User) -> None:
    """Withdraw an assignment; students' attempts stay in their history."""
    _ensure_teacher_of(assignment.classroom, teacher)
    assignment.delete()
