"""The student's pages: ask, problem sets, the live solution page with its controls, and history.

Views parse input, call one selector or service and render. htmx requests get the matching partial
(`page.html#part`); the same forms work without JavaScript through ordinary posts and redirects.
ServiceError becomes a message in the page (a form error, or a refusal, webapp.core.http.refused:
422 with the message swapped into the page's alert region); anything else is left to Django's error handling and never shown raw.
"""

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from inference_contract.protocol import HINTS_PER_ATTEMPT
from webapp.classes.selectors import assignments_for_student
from webapp.core.errors import ServiceError
from webapp.core.health import inference_workers
from webapp.core.http import (
    AuthenticatedHttpRequest,
    HtmxHttpRequest,
    found_or_404,
    refused,
    with_retry_after,
)
from webapp.core.roles import role_required
from webapp.tutoring import check_selectors, selectors, services
from webapp.tutoring.forms import (
    AskForm,
    FeedbackForm,
    HistorySearchForm,
    OwnAnswerForm,
    StartProblemForm,
)
from webapp.tutoring.generation_services import generation_cancel
from webapp.tutoring.models import Attempt, Generation
from webapp.tutoring.quotas import GenerationQuota, generation_quota

HISTORY_PAGE_SIZE = 20
FEEDBACK_TAG_CHOICES = list(services.FEEDBACK_TAGS.items())

# The clicks that queue a generation run in one database transaction, outermost, so the session
# and user reads of role_required, the rows the service writes and what the answer's page reads of
# them are one PostgreSQL commit instead of one per statement (issue #18's budget: at most four per
# generation, the socket's and the worker's included). The generation reaches the workers' queue
# on that commit (transaction.on_commit), i.e. once the page is rendered: about a millisecond.
queues_a_generation = transaction.atomic


def _error(request: HtmxHttpRequest, error: ServiceError, *, fallback: str) -> HttpResponse:
    """An expected failure: for htmx, the message into the page's alert region; otherwise a flash
    message on the page the student came from."""
    if request.htmx:
        response = render(request, "tutoring/alert.html", {"message": error.message})
        return refused(response, retarget="#page-alert", retry_at=error.retry_at)
    if error.status == 404:
        raise Http404(error.message)
    messages.error(request, error.message)
    return redirect(fallback)


# --- asking ---------------------------------------------------------------------------------


def _home_context(request: AuthenticatedHttpRequest, ask_form: AskForm) -> dict:
    student = request.user
    return {
        "ask_form": ask_form,
        "assignments": assignments_for_student(student=student),
        "practice_sets": selectors.practice_sets_for_student(student=student),
        "recent_attempts": selectors.attempt_list_for_student(student=student)[:5],
        "quota": generation_quota(user=student),
    }


@role_required("student")
def student_home(request: AuthenticatedHttpRequest) -> HttpResponse:
    return render(request, "tutoring/student_home.html", _home_context(request, AskForm()))


@queues_a_generation
@role_required("student")
@require_POST
def attempt_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = AskForm(request.POST)
    retry_at = None  # when a quota that refused the ask frees up
    if form.is_valid():
        try:
            attempt = services.attempt_create_from_text(
                student=request.user,
                statement=form.cleaned_data["statement"],
                mode=form.cleaned_data["mode"],
            )
        except ServiceError as error:
            form.add_error(None, error.message)
            retry_at = error.retry_at
        else:
            return _attempt_started(request, attempt)
    if request.htmx:
        # The same home page as without JavaScript, form errors and all, in place of the page's
        # content (the form posted by htmx targets it too).
        return refused(
            render(request, "tutoring/student_home.html#home", _home_context(request, form)),
            retarget="#student-page",
            retry_at=retry_at,
        )
    return refused(
        render(request, "tutoring/student_home.html", _home_context(request, form)),
        retry_at=retry_at,
    )


def _attempt_started(request: AuthenticatedHttpRequest, attempt: Attempt) -> HttpResponse:
    """The answer to a form that started an attempt (ask, or start a problem of a set).

    Without JavaScript: POST, redirect, then the attempt page's GET. With htmx: the attempt page's
    content in this response (HX-Push-Url puts the attempt's URL in the address bar and history,
    so reload, back and share behave as after the redirect), so the page's stream script opens
    the generation's socket as soon as this arrives, one request and one page load sooner. Drawn
    from the rows the service just created, as it left them (`attempt.first_generation`, and the
    quota counted with it): no query of its own, but for the workers' heartbeats in Redis.
    """
    url = reverse("tutoring:attempt_detail", args=[attempt.pk])
    if not request.htmx:
        return redirect(url)
    generation = attempt.first_generation  # its .attempt is `attempt`
    assert generation is not None, "set by the service that started the attempt"
    generation.number = 1  # as attempt_timeline numbers it
    response = render(
        request,
        "tutoring/attempt_started.html",
        {
            "quota": _quota_after(generation, user=request.user),
            "attempt": attempt,
            "problem": attempt.problem,
            "generations": [_with_checks(generation)],
            "steps": selectors.attempt_next_steps(attempt=attempt, generations=[generation]),
            "hint_limit": HINTS_PER_ATTEMPT,
            "solver_online": _solver_online(),
            "own_answers": [],  # a new attempt has none
            "feedback_tags": FEEDBACK_TAG_CHOICES,
        },
    )
    response["HX-Push-Url"] = url
    return response


def _problem_set_page(
    request: AuthenticatedHttpRequest, problem_set, assignment=None
) -> HttpResponse:
    problems = selectors.problem_list_with_progress(problem_set=problem_set, student=request.user)
    return render(
        request,
        "tutoring/problem_set.html",
        {"problem_set": problem_set, "assignment": assignment, "problems": problems},
    )


@role_required("student")
@require_GET
def problem_set_detail(request: AuthenticatedHttpRequest, problem_set_id: int) -> HttpResponse:
    problem_set = found_or_404(
        selectors.problem_set_get_for_student, problem_set_id=problem_set_id, student=request.user
    )
    return _problem_set_page(request, problem_set)


@role_required("student")
@require_GET
def assignment_detail(request: AuthenticatedHttpRequest, assignment_id: int) -> HttpResponse:
    assignment = found_or_404(
        selectors.assignment_get_for_student, assignment_id=assignment_id, student=request.user
    )
    return _problem_set_page(request, assignment.problem_set, assignment)


@queues_a_generation
@role_required("student")
@require_POST
def problem_start(request: AuthenticatedHttpRequest, problem_id: int) -> HttpResponse:
    problem = found_or_404(
        selectors.problem_get_for_student, problem_id=problem_id, student=request.user
    )
    form = StartProblemForm(request.POST)
    # Back to the list the problem was started from (never to a URL the request names).
    back = (
        reverse("tutoring:problem_set_detail", args=[problem.problem_set_id])
        if problem.problem_set_id
        else reverse("tutoring:student_home")
    )
    try:
        if not form.is_valid():
            raise ServiceError("Choose a full solution or hints.", code="bad_mode")
        attempt = services.attempt_create(
            student=request.user,
            problem=problem,
            mode=form.cleaned_data["mode"],
            assignment_id=form.cleaned_data["assignment"],
        )
    except ServiceError as error:
        return _error(request, error, fallback=back)
    return _attempt_started(request, attempt)


# --- the attempt page -----------------------------------------------------------------------


def _quota_after(generation: Generation, *, user) -> GenerationQuota:
    """The quota the page shows once `generation` is queued: as the enqueue counted it, or read
    again when that filled a window (then the page says when it frees up)."""
    return generation.quota_after or generation_quota(user=user)


def _with_checks(generation: Generation) -> Generation:
    """The generation with what the page shows about trusting it: `answer_check` (checked,
    disagrees or unchecked with the model's confidence) and `scope_note` (out of scope)."""
    generation.answer_check = check_selectors.generation_answer_check(generation=generation)
    generation.scope_note = check_selectors.generation_scope_note(generation=generation)
    return generation


def _attempt_context(attempt: Attempt) -> dict:
    return {
        "quota": generation_quota(user=attempt.student),
        "attempt": attempt,
        "problem": attempt.problem,
        "generations": [_with_checks(g) for g in selectors.attempt_timeline(attempt=attempt)],
        "steps": selectors.attempt_next_steps(attempt=attempt),
        "hint_limit": HINTS_PER_ATTEMPT,
        "solver_online": _solver_online(),
        "own_answers": attempt.own_answers.all()[:10],
        "feedback_tags": FEEDBACK_TAG_CHOICES,
    }


@role_required("student")
@require_GET
def attempt_detail(request: HtmxHttpRequest, attempt_id: int) -> HttpResponse:
    attempt = found_or_404(selectors.attempt_get_for_user, attempt_id=attempt_id, user=request.user)
    return render(request, "tutoring/attempt_detail.html", _attempt_context(attempt))


def _solver_online() -> bool:
    """Whether an inference worker is serving (a waiting student is told when none is)."""
    try:
        return any(worker.get("state") == "serving" for worker in inference_workers())
    except Exception:  # noqa: BLE001 - the notice is a courtesy; Redis trouble must not break pages
        return True


@role_required("student")
@require_GET
def attempt_actions(request: HtmxHttpRequest, attempt_id: int) -> HttpResponse:
    attempt = found_or_404(selectors.attempt_get_for_user, attempt_id=attempt_id, user=request.user)
    return render(
        request,
        "tutoring/attempt_detail.html#actions",
        {
            "attempt": attempt,
            "steps": selectors.attempt_next_steps(attempt=attempt),
            "hint_limit": HINTS_PER_ATTEMPT,
            "solver_online": _solver_online(),
            "quota": generation_quota(user=attempt.student),
        },
    )


def _new_generation_response(
    request: HtmxHttpRequest, attempt: Attempt, generation: Generation
) -> HttpResponse:
    if not request.htmx:
        return redirect(
            reverse("tutoring:attempt_detail", args=[attempt.pk]) + f"#generation-{generation.pk}"
        )
    # The new hint or solution goes at the end of the timeline; the buttons follow (out of band),
    # drawn from the row as the service left it (hints_revealed has moved on).
    attempt.refresh_from_db()
    return render(
        request,
        "tutoring/new_generation.html",
        {
            "attempt": attempt,
            "generation": _with_checks(
                selectors.timeline_generation(attempt=attempt, generation_id=generation.pk)
            ),
            "steps": selectors.attempt_next_steps(attempt=attempt),
            "hint_limit": HINTS_PER_ATTEMPT,
            "solver_online": _solver_online(),
            "quota": _quota_after(generation, user=attempt.student),
        },
    )


@queues_a_generation
@role_required("student")
@require_POST
def attempt_hint(request: HtmxHttpRequest, attempt_id: int) -> HttpResponse:
    return _request_generation(request, attempt_id, services.attempt_hint_request)


@queues_a_generation
@role_required("student")
@require_POST
def attempt_solution(request: HtmxHttpRequest, attempt_id: int) -> HttpResponse:
    return _request_generation(request, attempt_id, services.attempt_solution_request)


def _request_generation(request: HtmxHttpRequest, attempt_id: int, ask) -> HttpResponse:
    """A hint or the full solution: `ask(attempt=, user=)` enqueues the generation."""
    attempt = found_or_404(selectors.attempt_get_for_user, attempt_id=attempt_id, user=request.user)
    try:
        generation = ask(attempt=attempt, user=request.user)
    except ServiceError as error:
        return _error(
            request, error, fallback=reverse("tutoring:attempt_detail", args=[attempt_id])
        )
    return _new_generation_response(request, attempt, generation)


@role_required("student")
@require_POST
def own_answer_create(request: AuthenticatedHttpRequest, attempt_id: int) -> HttpResponse:
    attempt = found_or_404(selectors.attempt_get_for_user, attempt_id=attempt_id, user=request.user)
    form = OwnAnswerForm(request.POST)
    error = None
    limited = None  # a refusal by the answer-check limits (429): nothing stored, try again later
    own_answer = None
    if form.is_valid():
        try:
            own_answer = services.own_answer_create(
                attempt=attempt, user=request.user, answer=form.cleaned_data["answer"]
            )
        except ServiceError as service_error:
            error = service_error.message
            limited = service_error if service_error.status == 429 else None
    else:
        error = " ".join(form.errors.get("answer", ["Check your answer."]))
    if not request.htmx:
        if limited is not None:
            # The attempt page itself, status 429, with the message by the form and what was typed
            # still in the box: a redirect would lose it.
            context = _attempt_context(attempt) | {
                "own_answer_error": error,
                "own_answer_typed": form.cleaned_data["answer"],
            }
            page = render(request, "tutoring/attempt_detail.html", context, status=429)
            return with_retry_after(page, limited.retry_at)
        if error:
            messages.error(request, error)
        return redirect(reverse("tutoring:attempt_detail", args=[attempt_id]) + "#own-answer")
    response = render(
        request,
        "tutoring/attempt_detail.html#own-answer-result",
        {
            "attempt": attempt,
            "problem": attempt.problem,
            "own_answer_error": error,
            "latest_own_answer": own_answer,
            "own_answer_unit_note": selectors.own_answer_unit_note(own_answer=own_answer),
            "own_answers": attempt.own_answers.all()[:10],
        },
    )
    # htmx swaps only the site's refusal status (422) into the page (base.html), and leaves the
    # form, with what was typed, as it was; a 429 would show only the generic "too many requests"
    # alert. The service's 429 and when to retry still travel in Retry-After.
    if error:
        return refused(response, retry_at=limited.retry_at if limited is not None else None)
    return response


# --- one generation -------------------------------------------------------------------------


@role_required("student")
@require_GET
def generation_footer(request: HtmxHttpRequest, generation_id: int) -> HttpResponse:
    generation = found_or_404(
        selectors.generation_get_for_user, generation_id=generation_id, user=request.user
    )
    return render(
        request,
        "tutoring/attempt_detail.html#generation-footer",
        {
            "generation": _with_checks(generation),
            "attempt": generation.attempt,
            "feedback_tags": FEEDBACK_TAG_CHOICES,
        },
    )


@role_required("student")
@require_POST
def generation_stop(request: AuthenticatedHttpRequest, generation_id: int) -> HttpResponse:
    generation = found_or_404(
        selectors.generation_get_for_user, generation_id=generation_id, user=request.user
    )
    back = reverse("tutoring:attempt_detail", args=[generation.attempt_id])
    try:
        generation_cancel(generation=generation, user=request.user)
    except ServiceError as error:
        return _error(request, error, fallback=back)
    if request.htmx:
        # The page learns the outcome from the stream's `done` event (status "cancelled").
        return HttpResponse(status=204)
    return redirect(back)


def _feedback_form_error(form: FeedbackForm) -> str:
    """What to fix in a refused feedback form. Every refusal used to read "Choose thumbs up or
    thumbs down.", even for a comment that was too long or a tag outside the list."""
    if "rating" in form.errors:
        return "Choose thumbs up or thumbs down."
    if "tags" in form.errors:
        return "Choose what went wrong from the list."
    return " ".join(form.errors.get("text", ["Check your feedback."]))


@role_required("student")
@require_POST
def feedback_save(request: AuthenticatedHttpRequest, generation_id: int) -> HttpResponse:
    generation = found_or_404(
        selectors.generation_get_for_user, generation_id=generation_id, user=request.user
    )
    form = FeedbackForm(request.POST)
    error = None
    if form.is_valid():
        try:
            services.feedback_save(
                generation=generation,
                user=request.user,
                rating=form.cleaned_data["rating"],
                tags=form.cleaned_data["tags"],
                text=form.cleaned_data["text"],
            )
        except ServiceError as service_error:
            error = service_error.message
    else:
        error = _feedback_form_error(form)
    back = reverse("tutoring:attempt_detail", args=[generation.attempt_id])
    if not request.htmx:
        if error:
            messages.error(request, error)
        return redirect(f"{back}#generation-{generation.pk}")
    response = render(
        request,
        "tutoring/attempt_detail.html#feedback",
        {
            "generation": generation,
            "feedback_error": error,
            "feedback_tags": FEEDBACK_TAG_CHOICES,
            "just_saved": error is None,
        },
    )
    return refused(response) if error else response


# --- history --------------------------------------------------------------------------------


@role_required("student")
@require_GET
def attempt_history(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = HistorySearchForm(request.GET)
    query = form.cleaned_data["q"] if form.is_valid() else ""
    attempts = selectors.attempt_list_for_student(student=request.user, query=query)
    page = Paginator(attempts, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    template = "tutoring/history.html"
    if request.htmx and request.htmx.target == "history-results":
        template += "#results"
    return render(request, template, {"form": form, "query": query, "page": page})
