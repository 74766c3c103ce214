"""Classes: creation with a readable join code, joining (codes typed loosely, only students,
twice is harmless), removing a student, assignments of one's own sets only, progress."""

from datetime import timedelta

import pytest
from django.utils import timezone

from webapp.classes import services
from webapp.classes.join_codes import JOIN_CODE_ALPHABET, JOIN_CODE_LENGTH, normalise_join_code
from webapp.classes.models import Enrollment
from webapp.classes.selectors import assignments_for_student
from webapp.core.errors import ServiceError
from webapp.problems import services as problem_services
from webapp.tutoring.models import Attempt, OwnAnswer

pytestmark = pytest.mark.django_db


def test_join_codes_are_unambiguous_and_typed_loosely(teacher, students):
    classroom = services.classroom_create(teacher=teacher, name="  Year 9 maths ")
    assert classroom.name == "Year 9 maths"
    assert len(classroom.join_code) == JOIN_CODE_LENGTH
    assert set(classroom.join_code) <= set(JOIN_CODE_ALPHABET)
    assert not set("01OIL") & set(JOIN_CODE_ALPHABET)
    typed = f" {classroom.join_code[:4].lower()}-{classroom.join_code[4:]} "
    assert normalise_join_code(typed) == classroom.join_code

    enrollment, created = services.enrollment_join(student=students[0], code=typed)
    assert created and enrollment.classroom == classroom
    again, created = services.enrollment_join(student=students[0], code=classroom.join_code)
    assert not created and again == enrollment


def test_only_students_join_and_unknown_codes_say_so(teacher, other_teacher, students):
    classroom = services.classroom_create(teacher=teacher, name="A")
    with pytest.raises(ServiceError, match="Only student accounts"):
        services.enrollment_join(student=other_teacher, code=classroom.join_code)
    with pytest.raises(ServiceError, match="No class has the code “ZZZZ2222”"):
        services.enrollment_join(student=students[0], code="zzzz-2222")


def test_renewing_the_code_retires_the_old_one(teacher, students):
    classroom = services.classroom_create(teacher=teacher, name="A")
    old = classroom.join_code
    services.classroom_join_code_renew(classroom=classroom, teacher=teacher)
    assert classroom.join_code != old
    with pytest.raises(ServiceError):
        services.enrollment_join(student=students[0], code=old)


def test_remove_a_student(teacher, other_teacher, students):
    classroom = services.classroom_create(teacher=teacher, name="A")
    services.enrollment_join(student=students[0], code=classroom.join_code)
    with pytest.raises(ServiceError):
        services.enrollment_remove(
            classroom=classroom, teacher=other_teacher, student_id=students[0].pk
        )
    services.enrollment_remove(classroom=classroom, teacher=teacher, student_id=students[0].pk)
    assert not Enrollment.objects.exists()
    with pytest.raises(ServiceError) as missing:
        services.enrollment_remove(classroom=classroom, teacher=teacher, student_id=students[0].pk)
    assert missing.value.status == 404


def test_assign_only_own_sets_once(teacher, other_teacher, problem_set):
    classroom = services.classroom_create(teacher=teacher, name="A")
    theirs = problem_services.problem_set_create(teacher=other_teacher, title="Theirs")
    with pytest.raises(ServiceError):
        services.assignment_create(classroom=classroom, teacher=teacher, problem_set=theirs)
    their_class = services.classroom_create(teacher=other_teacher, name="B")
    with pytest.raises(ServiceError):
        services.assignment_create(classroom=their_class, teacher=teacher, problem_set=problem_set)
    services.assignment_create(classroom=classroom, teacher=teacher, problem_set=problem_set)
    with pytest.raises(ServiceError, match="already assigned"):
        services.assignment_create(classroom=classroom, teacher=teacher, problem_set=problem_set)


def test_students_see_their_assignments_with_progress(teacher, students, problem_set):
    classroom = services.classroom_create(teacher=teacher, name="A")
    other_class = services.classroom_create(teacher=teacher, name="B")
    later = problem_services.problem_set_create(teacher=teacher, title="Week 2")
    due = timezone.now() - timedelta(days=1)
    first = services.assignment_create(
        classroom=classroom, teacher=teacher, problem_set=problem_set, due_at=due
    )
    services.assignment_create(classroom=classroom, teacher=teacher, problem_set=later)
    services.assignment_create(classroom=other_class, teacher=teacher, problem_set=later)
    ann = students[0]
    services.enrollment_join(student=ann, code=classroom.join_code)

    problems = list(problem_set.problems.order_by("position"))
    solved = Attempt.objects.create(student=ann, problem=problems[0], assignment=first)
    OwnAnswer.objects.create(attempt=solved, answer="4", is_correct=False)
    OwnAnswer.objects.create(attempt=solved, answer="5", is_correct=True)
    Attempt.objects.create(student=ann, problem=problems[0])  # a second try of a solved problem
    Attempt.objects.create(student=ann, problem=problems[1])  # tried, not solved
    Attempt.objects.create(student=students[1], problem=problems[2])  # someone else

    mine = assignments_for_student(student=ann)

    assert [a.problem_set_title for a in mine] == ["Week 1", "Week 2"]  # dated first
    week1 = mine[0]
    assert (week1.total, week1.attempted, week1.solved) == (3, 2, 1)
    assert (week1.percent_solved, week1.percent_attempted) == (33, 67)
    assert week1.is_overdue and week1.classroom_name == "A" and week1.teacher_name == "t-ada"
    assert (mine[1].total, mine[1].due_at, mine[1].is_overdue) == (0, None, False)
    assert assignments_for_student(student=students[2]) == []
