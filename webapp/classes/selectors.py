"""Reads for classes: a teacher's classes and roster, students' assignments with progress, and
results per student and per problem.

Results cover the class's enrolled students on the problems of the sets assigned to it, whether
or not an attempt was opened from the assignment page (students also reach the same problems from
practice lists). They are counted with a few grouped queries, never a query per student or
problem, so a class on a 10,000-problem set stays fast:
- attempts, distinct problems tried and hints shown, from `Attempt`;
- own answers right and wrong, and problems solved (a right own answer), from `OwnAnswer`;
- the model's verdicts on finished solutions (correct, wrong, unverifiable), from `Generation`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from webapp.classes.join_codes import normalise_join_code
from webapp.classes.models import Assignment, Classroom, Enrollment
from webapp.core.errors import ServiceError
from webapp.problems.models import Problem
from webapp.tutoring.models import (
    Attempt,
    Generation,
    GenerationKind,
    GenerationStatus,
    OwnAnswer,
    Verdict,
)

if TYPE_CHECKING:
    from webapp.accounts.models import User
    from webapp.problems.models import ProblemSet


def _not_found(what: str) -> ServiceError:
    return ServiceError(f"That {what} does not exist.", code="not_found", status=404)


# --- a teacher's classes ---------------------------------------------------------------------


def classroom_list(*, teacher: User) -> QuerySet[Classroom]:
    """The teacher's classes by name, with `student_count` and `assignment_count`."""
    return (
        Classroom.objects.filter(teacher=teacher)
        .annotate(
            student_count=Count("enrollments", distinct=True),
            assignment_count=Count("assignments", distinct=True),
        )
        .order_by("name", "id")
    )


def classroom_get(*, teacher: User, classroom_id: int) -> Classroom:
    classroom = Classroom.objects.filter(teacher=teacher, pk=classroom_id).first()
    if classroom is None:
        raise _not_found("class")
    return classroom


def classroom_roster(*, classroom: Classroom) -> QuerySet[Enrollment]:
    return classroom.enrollments.select_related("student").order_by("student__username")


def classroom_assignments(*, classroom: Classroom) -> QuerySet[Assignment]:
    return classroom.assignments.select_related("problem_set").annotate(
        problem_count=Count("problem_set__problems", distinct=True)
    )


def assignment_get(*, teacher: User, assignment_id: int) -> Assignment:
    assignment = (
        Assignment.objects.select_related("classroom", "problem_set")
        .filter(pk=assignment_id, classroom__teacher=teacher)
        .first()
    )
    if assignment is None:
        raise _not_found("assignment")
    return assignment


# --- a student's side --------------------------------------------------------------------------


@dataclass(frozen=True)
class StudentAssignment:
    """One assignment as its student sees it, with progress on the assigned set.

    `attempted`: problems of the set the student opened at least once; `solved`: problems the
    student answered right (a correct own answer).
    """

    assignment_id: int
    classroom_id: int
    classroom_name: str
    teacher_name: str
    problem_set_id: int
    problem_set_title: str
    due_at: datetime | None
    total: int
    attempted: int
    solved: int

    @property
    def is_overdue(self) -> bool:
        return self.due_at is not None and self.due_at < timezone.now() and self.solved < self.total

    @property
    def percent_solved(self) -> int:
        return round(100 * self.solved / self.total) if self.total else 0

    @property
    def percent_attempted(self) -> int:
        return round(100 * self.attempted / self.total) if self.total else 0


def assignments_for_student(*, student: User) -> list[StudentAssignment]:
    """The student's assignments (soonest due first, undated last), with progress. Three queries."""
    assignments = list(
        Assignment.objects.filter(classroom__enrollments__student=student)
        .select_related("classroom__teacher", "problem_set")
        .annotate(total=Count("problem_set__problems", distinct=True))
    )
    set_ids = {assignment.problem_set_id for assignment in assignments}
    attempted = dict(
        Attempt.objects.filter(student=student, problem__problem_set__in=set_ids)
        .order_by()
        .values("problem__problem_set")
        .annotate(n=Count("problem", distinct=True))
        .values_list("problem__problem_set", "n")
    )
    solved = dict(
        OwnAnswer.objects.filter(
            attempt__student=student, is_correct=True, attempt__problem__problem_set__in=set_ids
        )
        .order_by()
        .values("attempt__problem__problem_set")
        .annotate(n=Count("attempt__problem", distinct=True))
        .values_list("attempt__problem__problem_set", "n")
    )
    result = [
        StudentAssignment(
            assignment_id=assignment.pk,
            classroom_id=assignment.classroom_id,
            classroom_name=assignment.classroom.name,
            teacher_name=assignment.classroom.teacher.get_full_name()
            or assignment.classroom.teacher.username,
            problem_set_id=assignment.problem_set_id,
            problem_set_title=assignment.problem_set.title,
            due_at=assignment.due_at,
            total=assignment.total,
            attempted=attempted.get(assignment.problem_set_id, 0),
            solved=solved.get(assignment.problem_set_id, 0),
        )
        for assignment in assignments
    ]
    far_future = timezone.now().replace(year=9999)
    return sorted(result, key=lambda a: (a.due_at or far_future, -a.assignment_id))


def classroom_for_code(*, code: str) -> Classroom | None:
    """The class a join code opens (for the confirmation page), None when no class has it."""
    return (
        Classroom.objects.select_related("teacher")
        .filter(join_code=normalise_join_code(code))
        .first()
    )


def classes_for_student(*, student: User) -> QuerySet[Enrollment]:
    return (
        Enrollment.objects.filter(student=student)
        .select_related("classroom__teacher")
        .order_by("classroom__name")
    )


# --- results -----------------------------------------------------------------------------------


@dataclass
class Activity:
    """What happened on some attempts (one student's, one problem's, or one pair's)."""

    attempts: int = 0
    students: int = 0
    problems_attempted: int = 0
    hints: int = 0
    own_right: int = 0
    own_wrong: int = 0
    problems_solved: int = 0
    model_correct: int = 0
    model_wrong: int = 0
    model_unverifiable: int = 0

    @property
    def model_checked(self) -> int:
        return self.model_correct + self.model_wrong

    @property
    def model_wrong_percent(self) -> int | None:
        return round(100 * self.model_wrong / self.model_checked) if self.model_checked else None


def activity_by(attempts: QuerySet[Attempt], keys: list[str]) -> dict[tuple, Activity]:
    """Activity grouped by attempt fields `keys` (e.g. ["student"], ["problem"]), three queries."""
    attempt_ids = attempts.order_by().values("pk")
    result: dict[tuple, Activity] = {}

    def of(row: dict, prefix: str) -> Activity:
        key = tuple(row[f"{prefix}{name}"] for name in keys)
        return result.setdefault(key, Activity())

    for row in (
        attempts.order_by()
        .values(*keys)
        .annotate(
            n=Count("id"),
            students=Count("student", distinct=True),
            problems=Count("problem", distinct=True),
            hints=Coalesce(Sum("hints_revealed"), 0),
        )
    ):
        activity = of(row, "")
        activity.attempts, activity.students = row["n"], row["students"]
        activity.problems_attempted, activity.hints = row["problems"], row["hints"]
    prefixed = [f"attempt__{name}" for name in keys]
    for row in (
        OwnAnswer.objects.filter(attempt__in=attempt_ids)
        .order_by()
        .values(*prefixed)
        .annotate(
            right=Count("id", filter=Q(is_correct=True)),
            wrong=Count("id", filter=Q(is_correct=False)),
            solved=Count("attempt__problem", filter=Q(is_correct=True), distinct=True),
        )
    ):
        activity = of(row, "attempt__")
        activity.own_right, activity.own_wrong, activity.problems_solved = (
            row["right"],
            row["wrong"],
            row["solved"],
        )
    for row in (
        Generation.objects.filter(
            attempt__in=attempt_ids, kind=GenerationKind.SOLUTION, status=GenerationStatus.DONE
        )
        .order_by()
        .values(*prefixed)
        .annotate(
            correct=Count("id", filter=Q(verdict=Verdict.CORRECT)),
            wrong=Count("id", filter=Q(verdict=Verdict.WRONG)),
            unverifiable=Count("id", filter=Q(verdict=Verdict.UNVERIFIABLE)),
        )
    ):
        activity = of(row, "attempt__")
        activity.model_correct, activity.model_wrong, activity.model_unverifiable = (
            row["correct"],
            row["wrong"],
            row["unverifiable"],
        )
    return result


@dataclass
class StudentRow:
    student_id: int
    username: str
    name: str
    activity: Activity

    def solved_percent(self, total: int) -> int:
        return round(100 * self.activity.problems_solved / total) if total else 0


@dataclass
class ProblemRow:
    problem: Problem
    activity: Activity


@dataclass
class ClassResults:
    students: list[StudentRow]
    problems: list[ProblemRow]  # problems with any activity, in set order
    problem_total: int  # problems in the sets covered
    untouched: int  # problems nobody has tried yet
    model_struggles: list[ProblemRow] = field(default_factory=list)


def _class_scope(classroom: Classroom, assignment: Assignment | None):
    set_ids = (
        [assignment.problem_set_id]
        if assignment is not None
        else list(classroom.assignments.values_list("problem_set_id", flat=True))
    )
    problems = Problem.objects.filter(problem_set__in=set_ids)
    student_ids = classroom.enrollments.values("student")
    attempts = Attempt.objects.filter(student__in=student_ids, problem__in=problems.values("pk"))
    return problems, attempts


def classroom_results(
    *, classroom: Classroom, assignment: Assignment | None = None, struggles: int = 10
) -> ClassResults:
    """Per-student and per-problem results for the class (or one of its assignments)."""
    if assignment is not None and assignment.classroom_id != classroom.pk:
        raise _not_found("assignment")
    problems, attempts = _class_scope(classroom, assignment)
    by_student = activity_by(attempts, ["student"])
    by_problem = activity_by(attempts, ["problem"])
    students = [
        StudentRow(
            student_id=enrollment.student_id,
            username=enrollment.student.username,
            name=enrollment.student.get_full_name(),
            activity=by_student.get((enrollment.student_id,), Activity()),
        )
        for enrollment in classroom_roster(classroom=classroom)
    ]
    touched = (
        problems.filter(pk__in=[key[0] for key in by_problem])
        .select_related("problem_set")
        .order_by("problem_set__title", "problem_set_id", "position", "id")
    )
    rows = [ProblemRow(problem=problem, activity=by_problem[(problem.pk,)]) for problem in touched]
    total = problems.count()
    return ClassResults(
        students=students,
        problems=rows,
        problem_total=total,
        untouched=total - len(rows),
        model_struggles=model_struggles(rows, limit=struggles),
    )


def model_struggles(rows: list[ProblemRow], *, limit: int = 10) -> list[ProblemRow]:
    """The problems the model got wrong most often (then by wrong rate): where fine-tuning helps."""
    wrong = [row for row in rows if row.activity.model_wrong]
    wrong.sort(
        key=lambda row: (-row.activity.model_wrong, -(row.activity.model_wrong_percent or 0))
    )
    return wrong[:limit]


def problem_set_model_struggles(
    *, problem_set: ProblemSet | int, limit: int = 10
) -> list[ProblemRow]:
    """Across every student who tried the set: the problems the model gets wrong most."""
    attempts = Attempt.objects.filter(problem__problem_set=problem_set)
    by_problem = activity_by(attempts, ["problem"])
    wrong_ids = [key[0] for key, activity in by_problem.items() if activity.model_wrong]
    problems = Problem.objects.filter(pk__in=wrong_ids).select_related("problem_set")
    rows = [ProblemRow(problem=problem, activity=by_problem[(problem.pk,)]) for problem in problems]
    return model_struggles(rows, limit=limit)


@dataclass
class Work:
    """What one student did on one problem, over all their attempts at it: what they asked the
    tutor for, the hints they used, their latest own answer and its verdict, whether they solved
    it (the students' rule: any own answer checked correct, `solved_with` being the first), and
    the tutor's latest finished solution with its verdict."""

    asked: str = ""  # "hints", "full solution" or "hints, then the full solution"
    hints: int = 0
    own_answer: str | None = None
    own_correct: bool | None = None
    solved_with: str | None = None
    tutor_final_answer: str = ""
    tutor_verdict: str = ""
    tutor_solution: str = ""

    @property
    def own_verdict(self) -> str:
        if self.own_answer is None:
            return ""
        return {True: "correct", False: "wrong"}.get(self.own_correct, "not checked")


def _asked(modes: set[str], asked_solution: bool) -> str:
    hinted = "tutor" in modes
    if hinted and asked_solution:
        return "hints, then the full solution"
    if hinted:
        return "hints"
    return "full solution"


def student_work(attempts: QuerySet[Attempt]) -> dict[tuple[int, int], Work]:
    """`Work` per (student id, problem id) for these attempts; three queries."""
    solutions = Generation.objects.filter(attempt=OuterRef("pk"), kind=GenerationKind.SOLUTION)
    done = solutions.filter(status=GenerationStatus.DONE).order_by("-finished_at", "-pk")
    own = OwnAnswer.objects.filter(attempt=OuterRef("pk")).order_by("-created_at", "-pk")
    rows = (
        attempts.order_by("created_at", "pk")
        .annotate(
            asked_solution=Exists(solutions),
            own_answer=Subquery(own.values("answer")[:1]),
            own_correct=Subquery(own.values("is_correct")[:1]),
            tutor_final_answer=Subquery(done.values("final_answer")[:1]),
            tutor_verdict=Subquery(done.values("verdict")[:1]),
            tutor_solution=Subquery(done.values("answer")[:1]),
        )
        .values(
            "student_id",
            "problem_id",
            "mode",
            "hints_revealed",
            "asked_solution",
            "own_answer",
            "own_correct",
            "tutor_final_answer",
            "tutor_verdict",
            "tutor_solution",
        )
    )
    work: dict[tuple[int, int], Work] = {}
    modes: dict[tuple[int, int], set[str]] = {}
    asked_solution: dict[tuple[int, int], bool] = {}
    for row in rows:  # oldest first: later attempts overwrite the "latest" fields
        key = (row["student_id"], row["problem_id"])
        item = work.setdefault(key, Work())
        modes.setdefault(key, set()).add(row["mode"])
        asked_solution[key] = asked_solution.get(key, False) or row["asked_solution"]
        item.hints += row["hints_revealed"]
        if row["own_answer"] is not None:
            item.own_answer, item.own_correct = row["own_answer"], row["own_correct"]
        if row["tutor_final_answer"] is not None or row["tutor_solution"]:
            item.tutor_final_answer = row["tutor_final_answer"] or ""
            item.tutor_verdict = row["tutor_verdict"] or ""
            item.tutor_solution = row["tutor_solution"] or ""
    for key, item in work.items():
        item.asked = _asked(modes[key], asked_solution[key])
    for student_id, problem_id, answer in (
        OwnAnswer.objects.filter(attempt__in=attempts.order_by().values("pk"), is_correct=True)
        .order_by("-created_at", "-pk")  # the first correct one is written last and kept
        .values_list("attempt__student_id", "attempt__problem_id", "answer")
    ):
        work[(student_id, problem_id)].solved_with = answer
    return work


@dataclass(frozen=True)
class StudentWork:
    """One student's work on the problems of the results page, in set order."""

    student: StudentRow
    problems: list[tuple[Problem, Work]]


def classroom_student_work(
    *, classroom: Classroom, assignment: Assignment | None = None
) -> list[StudentWork]:
    """Each student of the class with their work on every problem they tried (roster order)."""
    problems, attempts = _class_scope(classroom, assignment)
    work = student_work(attempts)
    ordered = list(
        problems.filter(pk__in={problem for _, problem in work})
        .select_related("problem_set")
        .order_by("problem_set__title", "problem_set_id", "position", "id")
    )
    result = []
    for enrollment in classroom_roster(classroom=classroom):
        student = StudentRow(
            student_id=enrollment.student_id,
            username=enrollment.student.username,
            name=enrollment.student.get_full_name(),
            activity=Activity(),
        )
        mine = [
            (problem, work[(student.student_id, problem.pk)])
            for problem in ordered
            if (student.student_id, problem.pk) in work
        ]
        result.append(StudentWork(student=student, problems=mine))
    return result


@dataclass(frozen=True)
class ResultLine:
    """One row of the CSV export: a student's activity and work on one problem."""

    student: str
    problem_set: str
    problem_number: int
    statement: str
    activity: Activity
    work: Work = field(default_factory=Work)


def classroom_result_lines(*, classroom: Classroom, assignment: Assignment | None = None):
    """Every (student, problem) pair with activity, ordered by student then problem."""
    problems, attempts = _class_scope(classroom, assignment)
    pairs = activity_by(attempts, ["student", "problem"])
    work = student_work(attempts)
    users = dict(
        get_user_model()
        .objects.filter(pk__in={student for student, _ in pairs})
        .values_list("pk", "username")
    )
    problem_info = {
        row["pk"]: row
        for row in problems.filter(pk__in={problem for _, problem in pairs}).values(
            "pk", "position", "statement", "problem_set__title"
        )
    }
    lines = [
        ResultLine(
            student=users[student],
            problem_set=problem_info[problem]["problem_set__title"],
            problem_number=problem_info[problem]["position"] + 1,
            statement=problem_info[problem]["statement"],
            activity=activity,
            work=work.get((student, problem), Work()),
        )
        for (student, problem), activity in pairs.items()
    ]
    return sorted(lines, key=lambda line: (line.student, line.problem_set, line.problem_number))
