"""Results per student and per problem from real Attempt / OwnAnswer / Generation rows, the
problems the model gets wrong most, and a CSV export that spreadsheets cannot execute."""

import csv
import io

import pytest
from django.urls import reverse

from webapp.classes import services
from webapp.classes.selectors import (
    classroom_result_lines,
    classroom_results,
    classroom_student_work,
)
from webapp.problems import services as problem_services
from webapp.tutoring.models import Attempt, Generation, OwnAnswer

pytestmark = pytest.mark.django_db


def solve(student, problem, *, verdicts=(), own=(), hints=0, kind="solution", status="done"):
    attempt = Attempt.objects.create(student=student, problem=problem, hints_revealed=hints)
    for verdict in verdicts:
        Generation.objects.create(attempt=attempt, kind=kind, status=status, verdict=verdict)
    for is_correct in own:
        OwnAnswer.objects.create(attempt=attempt, answer="x", is_correct=is_correct)
    return attempt


@pytest.fixture
def school(teacher, students, problem_set):
    classroom = services.classroom_create(teacher=teacher, name="Year 9")
    services.assignment_create(classroom=classroom, teacher=teacher, problem_set=problem_set)
    ann, ben, cat = students
    for student in (ann, ben):
        services.enrollment_join(student=student, code=classroom.join_code)
    p1, p2, p3 = problem_set.problems.order_by("position")
    solve(ann, p1, verdicts=["wrong", "correct"], own=[False, True], hints=2)
    solve(ann, p2, verdicts=["wrong"], own=[False])
    solve(ben, p2, verdicts=["wrong", "wrong"], hints=1)
    solve(ben, p2, verdicts=["correct"], own=[True])
    solve(ben, p1, verdicts=["unverifiable"])
    solve(ben, p1, verdicts=["wrong"], kind="hint")  # hints carry no verdict on the answer
    solve(ben, p1, verdicts=[""], status="cancelled")
    solve(cat, p3, verdicts=["wrong"])  # not in the class: not counted
    return classroom, (ann, ben), (p1, p2, p3)


def test_per_student_and_per_problem(school):
    classroom, (ann, ben), (p1, p2, p3) = school
    results = classroom_results(classroom=classroom)

    by_student = {row.username: row.activity for row in results.students}
    assert list(by_student) == ["s-ann", "s-ben"]
    a, b = by_student["s-ann"], by_student["s-ben"]
    assert (a.attempts, a.problems_attempted, a.problems_solved, a.hints) == (2, 2, 1, 2)
    assert (a.own_right, a.own_wrong, a.model_correct, a.model_wrong) == (1, 2, 1, 2)
    assert (b.attempts, b.problems_attempted, b.problems_solved, b.hints) == (5, 2, 1, 1)
    assert (b.own_right, b.own_wrong, b.model_correct, b.model_wrong, b.model_unverifiable) == (
        1,
        0,
        1,
        2,
        1,
    )

    by_problem = {row.problem.pk: row.activity for row in results.problems}
    assert set(by_problem) == {p1.pk, p2.pk}
    assert results.problem_total == 3 and results.untouched == 1
    assert (by_problem[p2.pk].students, by_problem[p2.pk].model_wrong) == (2, 3)
    assert by_problem[p2.pk].model_wrong_percent == 75
    assert [row.problem.pk for row in results.model_struggles] == [p2.pk, p1.pk]


def test_results_of_one_assignment(school, teacher):
    classroom, _, _ = school
    empty_set = problem_services.problem_set_create(teacher=teacher, title="Empty")
    assignment = services.assignment_create(
        classroom=classroom, teacher=teacher, problem_set=empty_set
    )
    results = classroom_results(classroom=classroom, assignment=assignment)
    assert results.problem_total == 0 and results.problems == []
    assert all(row.activity.attempts == 0 for row in results.students)


def test_csv_export_is_safe_against_formula_injection(school, client, teacher):
    classroom, (ann, _), (p1, _, _) = school
    ann.username = '=HYPERLINK("http://evil.example")'
    ann.save()
    p1.statement = "-2+3 = ?"
    p1.save()
    lines = classroom_result_lines(classroom=classroom)
    assert len(lines) == 4  # (ann, p1), (ann, p2), (ben, p1), (ben, p2)

    client.force_login(teacher)
    response = client.get(reverse("classes:classroom_results_csv", args=[classroom.pk]))
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:4] == ["student", "problem set", "problem", "statement"]
    cells = [cell for row in rows[1:] for cell in row]
    assert '\'=HYPERLINK("http://evil.example")' in cells
    assert "'-2+3 = ?" in cells
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in cells)


def test_results_page_renders_the_chart(school, client, teacher):
    classroom, _, (p1, p2, _) = school
    client.force_login(teacher)
    html = client.get(reverse("classes:classroom_results", args=[classroom.pk])).content.decode()
    assert '<svg class="bar-chart"' in html
    assert "Week 1 #2: 3 wrong." in html  # the chart's text description, most wrong first
    assert html.index("Week 1 #2: 3 wrong.") < html.index("Week 1 #1: 1 wrong.")


def test_each_students_work_per_problem_and_in_the_csv(teacher, students, problem_set, client):
    classroom = services.classroom_create(teacher=teacher, name="Year 8")
    services.assignment_create(classroom=classroom, teacher=teacher, problem_set=problem_set)
    ann = students[0]
    services.enrollment_join(student=ann, code=classroom.join_code)
    p1, p2, _ = problem_set.problems.order_by("position")
    # p1: hints first (2), then the full solution; right, then a wrong second answer.
    attempt = Attempt.objects.create(student=ann, problem=p1, mode="tutor", hints_revealed=2)
    Generation.objects.create(attempt=attempt, kind="hint", status="done", hint_index=0)
    Generation.objects.create(
        attempt=attempt,
        kind="solution",
        status="done",
        final_answer="85",
        verdict="correct",
        answer="47 + 38 = 85, so \\boxed{85}",
    )
    OwnAnswer.objects.create(attempt=attempt, answer="85", is_correct=True)
    OwnAnswer.objects.create(attempt=attempt, answer="86", is_correct=False)
    # p2: the full solution straight away, no own answer.
    solve(ann, p2, verdicts=["wrong"])

    (work,) = classroom_student_work(classroom=classroom)
    assert [problem.pk for problem, _ in work.problems] == [p1.pk, p2.pk]
    first, second = (w for _, w in work.problems)
    assert (first.asked, first.hints, first.own_answer, first.own_verdict) == (
        "hints, then the full solution",
        2,
        "86",
        "wrong",
    )
    assert first.solved_with == "85"
    assert (first.tutor_final_answer, first.tutor_verdict) == ("85", "correct")
    assert "\\boxed{85}" in first.tutor_solution
    assert (second.asked, second.own_answer, second.tutor_verdict) == (
        "full solution",
        None,
        "wrong",
    )

    client.force_login(teacher)
    page = client.get(reverse("classes:classroom_results", args=[classroom.pk])).content.decode()
    assert "Each student&#x27;s work" in page or "Each student's work" in page
    assert (
        "hints, then the full solution" in page
        and 'solved earlier with <code dir="auto">85</code>' in page
    )

    response = client.get(reverse("classes:classroom_results_csv", args=[classroom.pk]))
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    line = next(row for row in rows if row["problem"] == str(p1.position + 1))
    assert line["asked for"] == "hints, then the full solution"
    assert (line["latest own answer"], line["its verdict"], line["solved with"]) == (
        "86",
        "wrong",
        "85",
    )
    assert (line["tutor's final answer"], line["tutor's verdict"]) == ("85", "correct")
