"""The teacher's problem pages: sets, upload with preview, single problems, training exclusion.

Views only translate HTTP to service and selector calls: a `ServiceError` with status 404 becomes
a 404 page, others become a message or a form error; a refused upload re-renders the form with
every reason, line by line.
"""

from __future__ import annotations

import uuid
from functools import cached_property
from pathlib import Path
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from webapp.classes.charts import wrong_answers_chart
from webapp.classes.selectors import problem_set_model_struggles
from webapp.core.errors import ServiceError
from webapp.core.http import AuthenticatedHttpRequest, HtmxHttpRequest, found_or_404
from webapp.core.params import param_text
from webapp.core.roles import role_required
from webapp.problems import selectors, services
from webapp.problems.forms import NEW_SET, ImportForm, ProblemForm, ProblemSetForm, UploadForm
from webapp.problems.importers import FORMAT_CHOICES, UploadRefused
from webapp.problems.models import ProblemUpload, UploadState
from webapp.problems.spreadsheet import csv_bytes

PROBLEMS_PER_PAGE = 50
SETS_PER_PAGE = 25
PREVIEW_ITEMS_PER_PAGE = 50
EXAMPLES_DIR = Path(settings.BASE_DIR) / "docs" / "examples"
EXAMPLE_FILES = {
    "csv": "problems.csv",
    "json": "problems.json",
    "jsonl": "problems.jsonl",
    "gift": "problems.gift",
    "aiken": "problems-aiken.txt",
}
PREVIEW_TABS = {
    "all": "Everything",
    "error": "Errors",
    "duplicate": "Duplicates",
    "flagged": "Answers to check",
}


# --- sets ----------------------------------------------------------------------------------


@role_required("teacher")
def problem_set_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    sets = Paginator(selectors.problem_set_list(teacher=request.user), SETS_PER_PAGE)
    return render(
        request, "problems/problem_set_list.html", {"page": sets.get_page(request.GET.get("page"))}
    )


@role_required("teacher")
def problem_set_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = ProblemSetForm(request.POST or None, may_publish=request.user.may_publish)
    if request.method == "POST" and form.is_valid():
        try:
            problem_set = services.problem_set_create(teacher=request.user, **form.cleaned_data)
        except ServiceError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Created “{problem_set.title}”. Add its first problem.")
            return redirect("problems:problem_create", problem_set_id=problem_set.pk)
    return render(request, "problems/problem_set_form.html", {"form": form, "problem_set": None})


@role_required("teacher")
def problem_set_detail(request: HtmxHttpRequest, problem_set_id: int) -> HttpResponse:
    problem_set = found_or_404(
        selectors.problem_set_get, teacher=request.user, problem_set_id=problem_set_id
    )
    show = request.GET.get("show", "all")
    if show not in selectors.PROBLEM_FILTERS:
        show = "all"
    query = param_text(request.GET, "q", max_chars=200)
    problems = Paginator(
        selectors.problem_list(problem_set=problem_set, show=show, query=query), PROBLEMS_PER_PAGE
    )
    struggles = problem_set_model_struggles(problem_set=problem_set)
    context = {
        "problem_set": problem_set,
        "page": problems.get_page(request.GET.get("page")),
        "summary": selectors.problem_set_summary(problem_set=problem_set),
        "filters": [(key, label) for key, (label, _) in selectors.PROBLEM_FILTERS.items()],
        "show": show,
        "query": query,
        "filter_query": urlencode({"show": show, "q": query}) if show != "all" or query else "",
        "struggles": struggles,
        "chart": wrong_answers_chart(struggles),
    }
    template = "problems/problem_set_detail.html"
    if request.htmx and request.htmx.target == "problem-list":
        template += "#problem-list"
    return render(request, template, context)


@role_required("teacher")
def problem_set_edit(request: AuthenticatedHttpRequest, problem_set_id: int) -> HttpResponse:
    problem_set = found_or_404(
        selectors.problem_set_get, teacher=request.user, problem_set_id=problem_set_id
    )
    form = ProblemSetForm(
        request.POST or None, instance=problem_set, may_publish=request.user.may_publish
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.problem_set_update(
                problem_set=problem_set, teacher=request.user, **form.cleaned_data
            )
        except ServiceError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, "Saved.")
            return redirect("problems:problem_set_detail", problem_set_id=problem_set.pk)
    return render(
        request, "problems/problem_set_form.html", {"form": form, "problem_set": problem_set}
    )


@role_required("teacher")
def problem_set_delete(request: HtmxHttpRequest, problem_set_id: int) -> HttpResponse:
    problem_set = found_or_404(
        selectors.problem_set_get, teacher=request.user, problem_set_id=problem_set_id
    )
    if request.method == "POST":
        title = problem_set.title
        found_or_404(services.problem_set_delete, problem_set=problem_set, teacher=request.user)
        messages.success(request, f"Deleted “{title}”.")
        return redirect("problems:problem_set_list")
    return render(
        request,
        "problems/confirm_delete.html",
        {
            "what": f"the set “{problem_set.title}”",
            "consequences": selectors.problem_set_delete_consequences(problem_set=problem_set),
            "cancel_url": reverse("problems:problem_set_detail", args=[problem_set.pk]),
        },
    )


# --- upload, preview, import ----------------------------------------------------------------


@role_required("teacher")
def upload(request: AuthenticatedHttpRequest) -> HttpResponse:
    initial = {"target_set": request.GET.get("into", NEW_SET)}
    refusal: UploadRefused | None = None
    refused = _refused_upload(request)
    if refused is not None:
        # A big file the background reader refused: the same page as a refusal in the request,
        # with the teacher's choices kept.
        refusal = UploadRefused(refused.read_error, details=refused.read_error_details)
        initial = {
            "format": refused.requested_format,
            "default_domain": refused.default_domain,
            "on_error": refused.on_error,
            "title": refused.title,
            "target_set": str(refused.target_set_id) if refused.target_set_id else NEW_SET,
        }
    form = UploadForm(
        request.POST or None, request.FILES or None, teacher=request.user, initial=initial
    )
    if request.method == "POST" and form.is_valid():
        data, filename = form.upload_bytes()
        target_set = None
        if form.cleaned_data["target_set"]:
            target_set = found_or_404(
                selectors.problem_set_get,
                teacher=request.user,
                problem_set_id=int(form.cleaned_data["target_set"]),
            )
        try:
            staged = services.problem_upload_receive(
                teacher=request.user,
                data=data,
                filename=filename,
                format=form.cleaned_data["format"],
                default_domain=form.cleaned_data["default_domain"],
                on_error=form.cleaned_data["on_error"],
                title=form.cleaned_data["title"],
                target_set=target_set,
            )
        except UploadRefused as exc:
            refusal = exc
        except ServiceError as exc:
            if exc.status == 404:
                raise Http404(exc.message) from exc
            form.add_error(None, exc.message)
        else:
            return redirect("problems:upload_preview", token=staged.token)
    status = 400 if request.method == "POST" and (refusal or form.errors) else 200
    return render(
        request,
        "problems/upload.html",
        {
            "form": form,
            "refusal": refusal,
            "max_mb": f"{settings.PROBLEM_UPLOAD_MAX_BYTES / 1_048_576:.0f}",
        },
        status=status,
    )


def _refused_upload(request: AuthenticatedHttpRequest) -> ProblemUpload | None:
    """The teacher's upload named by `?refused=<token>` that the background reader refused."""
    try:
        token = uuid.UUID(request.GET.get("refused", ""))
    except ValueError:
        return None
    return selectors.problem_upload_refused(teacher=request.user, token=token)


@role_required("teacher")
def upload_preview(request: AuthenticatedHttpRequest, token: str) -> HttpResponse:
    # The upload row holds no items: the page reads one page of them (and the first errors), an
    # import reads the ready ones, and an Import click of a big preview none (the task does).
    staged = found_or_404(selectors.problem_upload_get, teacher=request.user, token=token)
    if staged.state == UploadState.REFUSED:
        return redirect(reverse("problems:upload") + f"?refused={staged.token}")
    if staged.state == UploadState.IMPORTED:
        return _imported(request, staged)
    importable = staged.state == UploadState.READY or staged.import_has_failed
    if not importable:
        if request.method == "POST":
            messages.error(
                request,
                "This file is already being imported: this page shows when it is done."
                if staged.state == UploadState.IMPORTING
                else "This file is still being read: import it once its preview appears.",
            )
        return render(request, "problems/upload_reading.html", {"staged": staged})
    form = ImportForm(
        request.POST or None, initial={"title": staged.title, "on_error": staged.on_error}
    )
    if request.method == "POST" and form.is_valid():
        try:
            result = services.problem_upload_import_start(
                upload=staged,
                teacher=request.user,
                on_error=form.cleaned_data["on_error"],
                title=form.cleaned_data["title"],
            )
        except ServiceError as exc:
            messages.error(request, exc.message)
            if exc.code == "importing":
                return redirect("problems:upload_preview", token=staged.token)
        else:
            if result is None:  # a big preview: the import task runs, the page shows it
                return redirect("problems:upload_preview", token=staged.token)
            messages.success(request, _import_message(result))
            return redirect("problems:problem_set_detail", problem_set_id=result.problem_set.pk)
    tab = request.GET.get("tab", "all")
    if tab not in PREVIEW_TABS:
        tab = "all"
    items = _CountedPaginator(
        selectors.problem_upload_items(upload=staged, show=tab),
        PREVIEW_ITEMS_PER_PAGE,
        count=selectors.problem_upload_item_count(upload=staged, show=tab),
    )
    context = {
        "staged": staged,
        "format_label": dict(FORMAT_CHOICES).get(staged.source_format, staged.source_format),
        "form": form,
        "tabs": PREVIEW_TABS,
        "tab": tab,
        # One page of the tab's items, fetched from the database (LIMIT/OFFSET in file order).
        "page": items.get_page(request.GET.get("page")),
        # Every problem of the file in one place (the first few; the rest are a link away).
        "error_items": list(
            selectors.problem_upload_items(upload=staged, show="error")[:PREVIEW_ERRORS_LISTED]
        )
        if staged.error_count
        else [],
    }
    return render(request, "problems/upload_preview.html", context)


PREVIEW_ERRORS_LISTED = 10


class _CountedPaginator(Paginator):
    """A Paginator over a queryset whose length is already known (the upload's counts), so a
    page costs one query, not a COUNT and a query."""

    def __init__(self, object_list, per_page: int, *, count: int) -> None:
        super().__init__(object_list, per_page)
        self._known_count = count

    @cached_property
    def count(self) -> int:
        return self._known_count


def _imported(request: AuthenticatedHttpRequest, staged: ProblemUpload) -> HttpResponse:
    """A big preview the import task has imported: the same message as an import in the
    request, on the new set's page."""
    result = services.problem_upload_import_result(upload=staged, teacher=request.user)
    if result is None:
        messages.success(request, "Imported; the set has since been deleted.")
        return redirect("problems:problem_set_list")
    messages.success(request, _import_message(result))
    return redirect("problems:problem_set_detail", problem_set_id=result.problem_set.pk)


def _import_message(result: services.ImportResult) -> str:
    parts = [f"Imported {result.imported:,} problem(s) into “{result.problem_set.title}”."]
    if result.skipped_errors:
        parts.append(f"Skipped {result.skipped_errors:,} with errors.")
    if result.skipped_duplicates:
        parts.append(f"Left out {result.skipped_duplicates:,} duplicate(s).")
    if result.flagged:
        parts.append(
            f"{result.flagged:,} have answers the checker cannot read: fix them to train on them."
        )
    return " ".join(parts)


@role_required("teacher")
def upload_status(request: HtmxHttpRequest, token: str) -> HttpResponse:
    """Polled by the preview while a big file is read, its answers are checked or it is imported
    in the background; reloads the page when that is over (done, refused or failed)."""
    staged = found_or_404(
        selectors.problem_upload_get, teacher=request.user, token=token, for_poll=True
    )
    if staged.state == UploadState.READING and not staged.read_has_failed:
        return render(request, "problems/upload_reading.html#reading", {"staged": staged})
    if staged.state == UploadState.READY and staged.pending_checks:
        return render(request, "problems/upload_preview.html#checking", {"staged": staged})
    if staged.state == UploadState.IMPORTING and not staged.import_has_failed:
        return render(request, "problems/upload_reading.html#importing", {"staged": staged})
    response = HttpResponse("")
    response["HX-Refresh"] = "true"
    return response


@role_required("teacher")
@require_POST
def upload_retry(request: AuthenticatedHttpRequest, token: str) -> HttpResponse:
    """Read again a file whose background read failed or went silent."""
    staged = found_or_404(selectors.problem_upload_get, teacher=request.user, token=token)
    try:
        services.problem_upload_retry(upload=staged, teacher=request.user)
    except ServiceError as exc:
        messages.error(request, exc.message)
    return redirect("problems:upload_preview", token=staged.token)


@role_required("teacher")
@require_POST
def upload_discard(request: AuthenticatedHttpRequest, token: str) -> HttpResponse:
    staged = found_or_404(selectors.problem_upload_get, teacher=request.user, token=token)
    try:
        services.problem_upload_discard(upload=staged, teacher=request.user)
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect("problems:upload_preview", token=staged.token)
    messages.success(request, "Discarded; nothing was imported.")
    return redirect("problems:upload")


@role_required("teacher")
def upload_report(request: HtmxHttpRequest, token: str) -> HttpResponse:
    """Every error, warning and duplicate of a staged upload as a spreadsheet-safe CSV."""
    staged = found_or_404(selectors.problem_upload_get, teacher=request.user, token=token)
    response = HttpResponse(
        csv_bytes(
            ["where", "kind", "field", "message", "statement"],
            selectors.problem_upload_report_rows(upload=staged),
        ),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = 'attachment; filename="upload-report.csv"'
    return response


@role_required("teacher")
def example_file(request: HtmxHttpRequest, format: str) -> HttpResponse:
    name = EXAMPLE_FILES.get(format)
    if name is None or not (EXAMPLES_DIR / name).is_file():
        raise Http404("No example for that format.")
    # FileResponse closes the file when the response is done.
    return FileResponse(open(EXAMPLES_DIR / name, "rb"), as_attachment=True, filename=name)


# --- single problems --------------------------------------------------------------------------


@role_required("teacher")
def problem_create(request: AuthenticatedHttpRequest, problem_set_id: int) -> HttpResponse:
    problem_set = found_or_404(
        selectors.problem_set_get, teacher=request.user, problem_set_id=problem_set_id
    )
    form = ProblemForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            created = services.problem_create(
                problem_set=problem_set, teacher=request.user, fields=form.service_fields()
            )
        except services.ProblemInvalid as exc:
            form.add_service_errors(exc.issues)
        else:
            messages.success(request, "Problem added." + _unit_note(form, created))
            if "add_another" in request.POST:
                return redirect("problems:problem_create", problem_set_id=problem_set.pk)
            return redirect(_last_page_url(problem_set))
    return render(
        request,
        "problems/problem_form.html",
        {"form": form, "problem_set": problem_set, "problem": None},
    )


def _unit_note(form: ProblemForm, problem) -> str:
    """What the upload preview says about a key without a unit, said after the form saves it."""
    if form.cleaned_data.get("unit") or not problem.unit:
        return ""
    answer = problem.reference_answer
    return (
        f" The answer {answer} has no unit; the statement asks for {problem.unit}, so it is "
        f"checked as {answer} {problem.unit} (answers in other units of the same quantity are "
        "converted, others are wrong)."
    )


def _last_page_url(problem_set) -> str:
    count = problem_set.problems.count()
    last_page = max(1, -(-count // PROBLEMS_PER_PAGE))
    return reverse("problems:problem_set_detail", args=[problem_set.pk]) + f"?page={last_page}"


@role_required("teacher")
def problem_edit(request: AuthenticatedHttpRequest, problem_id: int) -> HttpResponse:
    problem = found_or_404(selectors.problem_get, teacher=request.user, problem_id=problem_id)
    form = ProblemForm(request.POST or None, initial=ProblemForm.initial_for(problem))
    if request.method == "POST" and form.is_valid():
        try:
            problem = services.problem_update(
                problem=problem, teacher=request.user, fields=form.service_fields()
            )
        except services.ProblemInvalid as exc:
            form.add_service_errors(exc.issues)
        else:
            messages.success(request, "Problem saved." + _unit_note(form, problem))
            return redirect(_problem_url(problem))
    return render(
        request,
        "problems/problem_form.html",
        {"form": form, "problem_set": problem.problem_set, "problem": problem},
    )


def _problem_url(problem) -> str:
    before = problem.problem_set.problems.filter(position__lt=problem.position).count()
    page = before // PROBLEMS_PER_PAGE + 1
    url = reverse("problems:problem_set_detail", args=[problem.problem_set_id])
    return f"{url}?page={page}#problem-{problem.pk}"


@role_required("teacher")
def problem_delete(request: AuthenticatedHttpRequest, problem_id: int) -> HttpResponse:
    problem = found_or_404(selectors.problem_get, teacher=request.user, problem_id=problem_id)
    set_url = reverse("problems:problem_set_detail", args=[problem.problem_set_id])
    if request.method == "POST":
        services.problem_delete(problem=problem, teacher=request.user)
        messages.success(request, "Problem deleted.")
        return redirect(set_url)
    return render(
        request,
        "problems/confirm_delete.html",
        {
            "what": f"problem {problem.position + 1} (“{problem.statement[:80]}”)",
            "consequences": selectors.problem_delete_consequences(problem=problem),
            "cancel_url": set_url,
        },
    )


@role_required("teacher")
@require_POST
def problem_training(request: AuthenticatedHttpRequest, problem_id: int) -> HttpResponse:
    """Exclude a problem from the training pool, or let it back in."""
    problem = found_or_404(selectors.problem_get, teacher=request.user, problem_id=problem_id)
    excluded = request.POST.get("excluded") == "1"
    services.problem_training_exclusion_update(
        problem=problem, teacher=request.user, excluded=excluded
    )
    if request.htmx:
        return render(
            request,
            "problems/problem_set_detail.html#problem-row",
            {"problem": problem, "problem_set": problem.problem_set},
        )
    return redirect(_problem_url(problem))


@role_required("teacher")
@require_POST
def problem_set_training(request: AuthenticatedHttpRequest, problem_set_id: int) -> HttpResponse:
    """A teacher trusted for training approves their own set for the pool, or withdraws it."""
    problem_set = found_or_404(
        selectors.problem_set_get, teacher=request.user, problem_set_id=problem_set_id
    )
    approved = request.POST.get("approved") == "1"
    try:
        services.problem_set_training_approval_update(
            problem_set=problem_set, actor=request.user, approved=approved
        )
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            "Approved for training: its ready problems join the pool."
            if approved
            else "Withdrawn from training: its problems left the pool.",
        )
    return redirect("problems:problem_set_detail", problem_set_id=problem_set.pk)


# --- the admin's set review (under /dashboard/sets/) -------------------------------------------

REVIEW_SETS_PER_PAGE = 30
REVIEW_PROBLEMS_PER_PAGE = 50


@role_required("admin")
@require_GET
def set_review_list(request: HtmxHttpRequest) -> HttpResponse:
    show = request.GET.get("show", "practice")
    if show not in selectors.SET_REVIEW_FILTERS:
        show = "practice"
    query = param_text(request.GET, "q", max_chars=200)
    sets = Paginator(selectors.set_review_list(show=show, query=query), REVIEW_SETS_PER_PAGE)
    return render(
        request,
        "problems/set_review_list.html",
        {
            "page": sets.get_page(request.GET.get("page")),
            "tabs": [(key, label) for key, (label, _) in selectors.SET_REVIEW_FILTERS.items()],
            "show": show,
            "query": query,
            "filter_query": urlencode({"show": show, "q": query}),
        },
    )


@role_required("admin")
@require_GET
def set_review_detail(request: HtmxHttpRequest, problem_set_id: int) -> HttpResponse:
    """The set as its teacher made it, read only: what the admin approves."""
    problem_set = found_or_404(selectors.set_review_get, problem_set_id=problem_set_id)
    problems = Paginator(selectors.problem_list(problem_set=problem_set), REVIEW_PROBLEMS_PER_PAGE)
    return render(
        request,
        "problems/set_review_detail.html",
        {
            "problem_set": problem_set,
            "summary": selectors.problem_set_summary(problem_set=problem_set),
            "page": problems.get_page(request.GET.get("page")),
        },
    )


_SET_DECISIONS = {
    "public": lambda problem_set, actor: services.problem_set_visibility_update(
        problem_set=problem_set, actor=actor, public=True
    ),
    "private": lambda problem_set, actor: services.problem_set_visibility_update(
        problem_set=problem_set, actor=actor, public=False
    ),
    "approve": lambda problem_set, actor: services.problem_set_training_approval_update(
        problem_set=problem_set, actor=actor, approved=True
    ),
    "withdraw": lambda problem_set, actor: services.problem_set_training_approval_update(
        problem_set=problem_set, actor=actor, approved=False
    ),
}
_SET_DONE = {
    "public": "“{title}” is public: every student sees it.",
    "private": "“{title}” is listed only for its teacher's classes again.",
    "approve": "“{title}” is approved for training: its ready problems join the pool.",
    "withdraw": "“{title}” was withdrawn from training.",
}


@role_required("admin")
@require_POST
def set_review_decide(request: HtmxHttpRequest, problem_set_id: int) -> HttpResponse:
    problem_set = found_or_404(selectors.set_review_get, problem_set_id=problem_set_id)
    decision = request.POST.get("decision", "")
    if decision not in _SET_DECISIONS:
        raise Http404("No such decision.")
    try:
        _SET_DECISIONS[decision](problem_set, request.user)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _SET_DONE[decision].format(title=problem_set.title))
    # Back where the admin decided: the list (with its filter) or the set's own page.
    back = request.POST.get("next", "")
    if back == "detail":
        return redirect("set_review:set_detail", problem_set_id=problem_set.pk)
    query = urlencode({"show": request.POST.get("show", "practice")[:20]})
    return redirect(reverse("set_review:set_list") + f"?{query}")
