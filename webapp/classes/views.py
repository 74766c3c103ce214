"""The teacher's class pages (home, class, roster, assignments, results) and the student's
"join a class" and "your classes" pages.

Views translate HTTP into service and selector calls and hold no rules: a `ServiceError` with
status 404 becomes a 404 page (another teacher's class is "not found"), others become messages.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from webapp.classes import selectors, services
from webapp.classes.charts import wrong_answers_chart
from webapp.classes.forms import AssignForm, ClassroomForm, DueDateForm, JoinForm
from webapp.core.errors import ServiceError
from webapp.core.http import AuthenticatedHttpRequest, HtmxHttpRequest, found_or_404
from webapp.core.params import param_id
from webapp.core.roles import role_required
from webapp.problems.selectors import problem_set_list
from webapp.problems.spreadsheet import csv_bytes

RECENT_SETS_ON_HOME = 5


# --- the teacher's home and classes ----------------------------------------------------------


@role_required("teacher")
def teacher_home(request: AuthenticatedHttpRequest) -> HttpResponse:
    return render(
        request,
        "classes/teacher_home.html",
        {
            "classrooms": selectors.classroom_list(teacher=request.user),
            "recent_sets": problem_set_list(teacher=request.user)[:RECENT_SETS_ON_HOME],
            "form": ClassroomForm(),
        },
    )


@role_required("teacher")
@require_POST
def classroom_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = ClassroomForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give the class a name.")
        return redirect("classes:teacher_home")
    try:
        classroom = services.classroom_create(teacher=request.user, name=form.cleaned_data["name"])
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect("classes:teacher_home")
    messages.success(
        request, f"Created {classroom.name}. Share the join code or link with your students."
    )
    return redirect("classes:classroom_detail", classroom_id=classroom.pk)


@role_required("teacher")
def classroom_detail(request: HtmxHttpRequest, classroom_id: int) -> HttpResponse:
    classroom = found_or_404(
        selectors.classroom_get, teacher=request.user, classroom_id=classroom_id
    )
    join_url = request.build_absolute_uri(
        reverse("classes:join_with_code", args=[classroom.join_code])
    )
    return render(
        request,
        "classes/classroom_detail.html",
        {
            "classroom": classroom,
            "join_url": join_url,
            "roster": selectors.classroom_roster(classroom=classroom),
            "assignments": selectors.classroom_assignments(classroom=classroom),
            "assign_form": AssignForm(teacher=request.user, classroom=classroom),
            "rename_form": ClassroomForm(initial={"name": classroom.name}),
        },
    )


@role_required("teacher")
@require_POST
def classroom_rename(request: AuthenticatedHttpRequest, classroom_id: int) -> HttpResponse:
    classroom = found_or_404(
        selectors.classroom_get, teacher=request.user, classroom_id=classroom_id
    )
    form = ClassroomForm(request.POST)
    try:
        if not form.is_valid():
            raise ServiceError("Give the class a name.")
        services.classroom_rename(
            classroom=classroom, teacher=request.user, name=form.cleaned_data["name"]
        )
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Renamed.")
    return redirect("classes:classroom_detail", classroom_id=classroom.pk)


@role_required("teacher")
@require_POST
def classroom_code_renew(request: AuthenticatedHttpRequest, classroom_id: int) -> HttpResponse:
    classroom = found_or_404(
        selectors.classroom_get, teacher=request.user, classroom_id=classroom_id
    )
    services.classroom_join_code_renew(classroom=classroom, teacher=request.user)
    messages.success(
        request, f"New join code: {classroom.join_code}. The old code and link no longer work."
    )
    return redirect("classes:classroom_detail", classroom_id=classroom.pk)


@role_required("teacher")
def classroom_delete(request: AuthenticatedHttpRequest, classroom_id: int) -> HttpResponse:
    classroom = found_or_404(
        selectors.classroom_get, teacher=request.user, classroom_id=classroom_id
    )
    if request.method == "POST":
        name = classroom.name
        services.classroom_delete(classroom=classroom, teacher=request.user)
        messages.success(request, f"Deleted {name}. Students keep their own history.")
        return redirect("classes:teacher_home")
    return render(
        request,
        "classes/confirm_delete.html",
        {
            "classroom": classroom,
            "student_count": classroom.enrollments.count(),
            "assignment_count": classroom.assignments.count(),
        },
    )


@role_required("teacher")
@require_POST
def student_remove(request: HtmxHttpRequest, classroom_id: int, student_id: int) -> HttpResponse:
    classroom = found_or_404(
        selectors.classroom_get, teacher=request.user, classroom_id=classroom_id
    )
    found_or_404(
        services.enrollment_remove,
        classroom=classroom,
        teacher=request.user,
        student_id=student_id,
    )
    if request.htmx:
        return HttpResponse("")  # the row is swapped out of the roster
    messages.success(request, "Removed from the class.")
    return redirect("classes:classroom_detail", classroom_id=classroom.pk)


# --- assignments -------------------------------------------------------------------------------


@role_required("teacher")
@require_POST
def assignment_create(request: AuthenticatedHttpRequest, classroom_id: int) -> HttpResponse:
    classroom = found_or_404(
        selectors.classroom_get, teacher=request.user, classroom_id=classroom_id
    )
    form = AssignForm(request.POST, teacher=request.user)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect("classes:classroom_detail", classroom_id=classroom.pk)
    try:
        assignment = services.assignment_create(
            classroom=classroom,
            teacher=request.user,
            problem_set=form.cleaned_data["problem_set"],
            due_at=form.cleaned_data["due_at"],
        )
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Assigned “{assignment.problem_set.title}” to {classroom.name}.")
    return redirect("classes:classroom_detail", classroom_id=classroom.pk)


@role_required("teacher")
@require_POST
def assignment_due(request: AuthenticatedHttpRequest, assignment_id: int) -> HttpResponse:
    assignment = found_or_404(
        selectors.assignment_get, teacher=request.user, assignment_id=assignment_id
    )
    form = DueDateForm(request.POST)
    if form.is_valid():
        services.assignment_due_update(
            assignment=assignment, teacher=request.user, due_at=form.cleaned_data["due_at"]
        )
        messages.success(request, "Due date saved.")
    else:
        # The form's own reason (a date out of range says which years it may take).
        messages.error(
            request, " ".join(form.errors.get("due_at", ["That is not a date and time."]))
        )
    return redirect("classes:classroom_detail", classroom_id=assignment.classroom_id)


@role_required("teacher")
@require_POST
def assignment_delete(request: AuthenticatedHttpRequest, assignment_id: int) -> HttpResponse:
    assignment = found_or_404(
        selectors.assignment_get, teacher=request.user, assignment_id=assignment_id
    )
    services.assignment_delete(assignment=assignment, teacher=request.user)
    messages.success(request, f"Withdrew “{assignment.problem_set.title}”.")
    return redirect("classes:classroom_detail", classroom_id=assignment.classroom_id)


# --- results ----------------------------------------------------------------------------------


def _results_scope(request: HtmxHttpRequest, classroom_id: int):
    classroom = found_or_404(
        selectors.classroom_get, teacher=request.user, classroom_id=classroom_id
    )
    assignment = None
    assignment_id = param_id(request.GET, "assignment")
    if assignment_id is not None:
        assignment = found_or_404(
            selectors.assignment_get, teacher=request.user, assignment_id=assignment_id
        )
        if assignment.classroom_id != classroom.pk:
            raise Http404("That assignment is not in this class.")
    return classroom, assignment


@role_required("teacher")
def classroom_results(request: HtmxHttpRequest, classroom_id: int) -> HttpResponse:
    classroom, assignment = _results_scope(request, classroom_id)
    results = selectors.classroom_results(classroom=classroom, assignment=assignment)
    return render(
        request,
        "classes/results.html",
        {
            "classroom": classroom,
            "assignment": assignment,
            "assignments": selectors.classroom_assignments(classroom=classroom),
            "results": results,
            "work": selectors.classroom_student_work(classroom=classroom, assignment=assignment),
            "chart": wrong_answers_chart(results.model_struggles),
        },
    )


@role_required("teacher")
def classroom_results_csv(request: HtmxHttpRequest, classroom_id: int) -> HttpResponse:
    classroom, assignment = _results_scope(request, classroom_id)
    lines = selectors.classroom_result_lines(classroom=classroom, assignment=assignment)
    header = [
        "student",
        "problem set",
        "problem",
        "statement",
        "attempts",
        "hints used",
        "own answers right",
        "own answers wrong",
        "model correct",
        "model wrong",
        "model unverifiable",
        "asked for",
        "latest own answer",
        "its verdict",
        "solved with",
        "tutor's final answer",
        "tutor's verdict",
    ]
    rows = (
        [
            line.student,
            line.problem_set,
            line.problem_number,
            line.statement,
            line.activity.attempts,
            line.activity.hints,
            line.activity.own_right,
            line.activity.own_wrong,
            line.activity.model_correct,
            line.activity.model_wrong,
            line.activity.model_unverifiable,
            line.work.asked,
            line.work.own_answer or "",
            line.work.own_verdict,
            line.work.solved_with or "",
            line.work.tutor_final_answer,
            line.work.tutor_verdict,
        ]
        for line in lines
    )
    response = HttpResponse(csv_bytes(header, rows), content_type="text/csv; charset=utf-8")
    filename = f"results-class-{classroom.pk}" + (
        f"-assignment-{assignment.pk}" if assignment else ""
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    return response


# --- the student's side ------------------------------------------------------------------------


@role_required("student")
def my_classes(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The classes a student is in, their assignments with progress, and a box to join another."""
    return render(
        request,
        "classes/my_classes.html",
        {
            "form": JoinForm(),
            "enrollments": selectors.classes_for_student(student=request.user),
            "assignments": selectors.assignments_for_student(student=request.user),
        },
    )


@role_required("student")
@require_POST
def join(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _join(request, JoinForm(request.POST))


@role_required("student")
def join_with_code(request: AuthenticatedHttpRequest, code: str) -> HttpResponse:
    """The link a teacher shares: confirm, then join (a GET never changes anything)."""
    form = JoinForm({"code": code})
    if request.method == "POST":
        return _join(request, form)
    if not form.is_valid():
        return render(request, "classes/join_confirm.html", {"code": ""}, status=404)
    code = form.cleaned_data["code"]
    classroom = selectors.classroom_for_code(code=code)
    return render(
        request,
        "classes/join_confirm.html",
        {"code": code, "classroom": classroom},
        status=200 if classroom else 404,
    )


def _join(request: AuthenticatedHttpRequest, form: JoinForm) -> HttpResponse:
    if not form.is_valid():
        messages.error(request, " ".join(form.errors.get("code", ["Check the join code."])))
        return redirect("classes:my_classes")
    try:
        enrollment, created = services.enrollment_join(
            student=request.user, code=form.cleaned_data["code"]
        )
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        name = enrollment.classroom.name
        messages.success(
            request, f"You joined {name}." if created else f"You are already in {name}."
        )
    return redirect("classes:my_classes")
