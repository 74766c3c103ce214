"""The admin dashboard: model registry, serving status, training jobs and the job page.

Function views typed with HtmxHttpRequest; each page is one template with `{% partialdef %}`
blocks that htmx requests re-render (`page.html#part`). Writes go through the services; a
ServiceError becomes a message on the page, answered as a refusal (422, webapp.core.http.refused,
which htmx swaps), never a stack trace.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from webapp.accounts.selectors import teacher_status_counts
from webapp.core.errors import ServiceError
from webapp.core.http import AuthenticatedHttpRequest, HtmxHttpRequest, refused
from webapp.core.params import param_text
from webapp.core.roles import role_required
from webapp.registry import selectors, services
from webapp.registry.forms import PromoteForm
from webapp.registry.models import ModelVersion, TrainingJob
from webapp.registry.training_jobs import services as training_services
from webapp.registry.training_jobs.catalog import DEFAULT_STAGE, METRIC_CHARTS
from webapp.registry.training_jobs.launch_form import LaunchJobForm
from webapp.registry.training_jobs.pool import pool_counts
from webapp.registry.training_jobs.ranks import rank_rows, rank_stale_after_seconds


def _registry_context() -> dict:
    rows = selectors.model_version_rows()
    return {
        "rows": rows,
        # Promote's confirmation compares the candidate with what students are served now.
        "champion_row": next((r for r in rows if r.version.status == "champion"), None),
        "previous_champion": services.model_version_previous_champion(),
        "promotions": selectors.promotion_event_list(limit=8),
        "tolerance": services.promotion_tolerance(),
    }


def _jobs_context() -> dict:
    jobs = list(selectors.training_job_list())
    for job in jobs:
        job.is_stalled = training_services.training_job_is_stalled(job)
    return {
        "jobs": jobs,
        "any_active": any(j.status in ("queued", "running", "cancelling") for j in jobs),
    }


@role_required("admin")
@require_GET
def dashboard(request: HtmxHttpRequest) -> HttpResponse:
    context = {
        **_registry_context(),
        **_jobs_context(),
        "serving": selectors.serving_status(),
        "form": LaunchJobForm(),
        "pool": pool_counts(problem_filter={}, stage=DEFAULT_STAGE),
        "pending_teacher_count": teacher_status_counts()["pending"],
    }
    return render(request, "registry/dashboard.html", context)


@role_required("admin")
@require_GET
def serving_panel(request: HtmxHttpRequest) -> HttpResponse:
    return render(
        request, "registry/dashboard.html#serving", {"serving": selectors.serving_status()}
    )


@role_required("admin")
@require_GET
def jobs_panel(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, "registry/dashboard.html#jobs", _jobs_context())


@role_required("admin")
@require_GET
def registry_panel(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, "registry/dashboard.html#registry", _registry_context())


def _registry_result(
    request: HtmxHttpRequest, *, ok: str | None = None, error: ServiceError | None = None
) -> HttpResponse:
    """Re-render the registry table with the outcome (htmx), or redirect with a message."""
    if request.htmx:
        context = {**_registry_context(), "ok_message": ok, "error_message": error}
        response = render(request, "registry/dashboard.html#registry", context)
        return refused(response) if error is not None else response
    if error is not None:
        messages.error(request, error.message)
    elif ok:
        messages.success(request, ok)
    return redirect("registry:dashboard")


@role_required("admin")
@require_POST
def model_version_promote(request: AuthenticatedHttpRequest, version_id: int) -> HttpResponse:
    version = get_object_or_404(ModelVersion, pk=version_id)
    form = PromoteForm(request.POST)
    if not form.is_valid():
        # An invalid reason (over 2000 characters, a NUL byte) was dropped by the form, so the
        # service said "An override needs a reason." to an admin who gave one: say what is wrong.
        problems = "; ".join(str(e) for errors in form.errors.values() for e in errors)
        return _registry_result(request, error=ServiceError(f"Reason: {problems}"))
    try:
        event = services.model_version_promote(
            model_version=version,
            actor=request.user,
            override=form.cleaned_data.get("override", False),
            reason=form.cleaned_data.get("reason", ""),
        )
    except ServiceError as exc:
        return _registry_result(request, error=exc)
    suffix = " (override recorded)" if event.override else ""
    return _registry_result(
        request, ok=f"{version.label} is the champion; workers are swapping to it{suffix}."
    )


@role_required("admin")
@require_POST
def model_version_rollback(request: AuthenticatedHttpRequest) -> HttpResponse:
    try:
        event = services.model_version_rollback(
            actor=request.user, reason=param_text(request.POST, "reason", max_chars=2000)
        )
    except ServiceError as exc:
        return _registry_result(request, error=exc)
    return _registry_result(
        request, ok=f"Rolled back to {event.model_version.label}; workers are swapping to it."
    )


@role_required("admin")
@require_POST
def model_version_evaluate(request: HtmxHttpRequest, version_id: int) -> HttpResponse:
    version = get_object_or_404(ModelVersion, pk=version_id)
    services.evaluation_request(model_version=version)
    return _registry_result(request, ok=f"Evaluation of {version.label} queued.")


@role_required("admin")
@require_GET
def pool_count(request: HtmxHttpRequest) -> HttpResponse:
    form = LaunchJobForm(request.GET)
    form.is_valid()  # partial input is fine: count what can be read
    problem_filter = {
        "domains": list(form.cleaned_data.get("domains") or []),
        "problem_set_ids": [s.pk for s in form.cleaned_data.get("problem_sets") or []],
    }
    stage = form.cleaned_data.get("stage") or DEFAULT_STAGE
    pool = pool_counts(problem_filter=problem_filter, stage=stage)
    return render(request, "registry/dashboard.html#pool-count", {"pool": pool})


@role_required("admin")
@require_POST
def training_job_launch(request: HtmxHttpRequest) -> HttpResponse:
    form = LaunchJobForm(request.POST)
    if form.is_valid():
        try:
            job = training_services.training_job_create(
                created_by=request.user,
                base_model=form.cleaned_data["base_model"],
                stage=form.cleaned_data["stage"],
                algorithm=form.cleaned_data["algorithm"],
                hyperparameters=form.hyperparameters(),
                problem_filter=form.problem_filter(),
            )
        except ServiceError as exc:
            form.add_error(None, exc.message)
        else:
            url = reverse("registry:job", args=[job.pk])
            messages.success(request, f"Training job #{job.pk} queued.")
            return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    problem_filter = {
        "domains": list(form.cleaned_data.get("domains") or []),
        "problem_set_ids": [s.pk for s in form.cleaned_data.get("problem_sets") or []],
    }
    pool = pool_counts(
        problem_filter=problem_filter,
        stage=form.cleaned_data.get("stage") or DEFAULT_STAGE,
    )
    template = "registry/dashboard.html#launch" if request.htmx else "registry/dashboard.html"
    context = {"form": form, "pool": pool}
    if not request.htmx:
        context |= {
            **_registry_context(),
            **_jobs_context(),
            "serving": selectors.serving_status(),
        }
    return refused(render(request, template, context))


def _job_context(job: TrainingJob) -> dict:
    return {
        "job": job,
        "is_stalled": training_services.training_job_is_stalled(job),
        "checkpoints": selectors.training_job_checkpoints(job=job),
        "problem_accuracy": selectors.training_job_problem_accuracy(job=job),
        "samples": selectors.training_job_recent_samples(job=job),
        "ranks": rank_rows(job),
        "rank_stale_seconds": rank_stale_after_seconds(),
        "charts": METRIC_CHARTS,
    }


@role_required("admin")
@require_GET
def training_job_detail(request: HtmxHttpRequest, job_id: int) -> HttpResponse:
    job = selectors.training_job_get(job_id=job_id)
    if job is None:
        raise Http404("No such training job.")
    template = "registry/job.html"
    part = request.GET.get("part")
    if request.htmx and part in ("controls", "problems", "checkpoints"):
        template = f"registry/job.html#{part}"
    return render(request, template, _job_context(job))


def _job_action(request: HtmxHttpRequest, job_id: int, action) -> HttpResponse:
    job = get_object_or_404(TrainingJob, pk=job_id)
    error = None
    try:
        job = action(job=job, actor=request.user)
    except ServiceError as exc:
        error = exc
    if request.htmx:
        context = {**_job_context(job), "error_message": error}
        response = render(request, "registry/job.html#controls", context)
        return refused(response) if error is not None else response
    if error is not None:
        messages.error(request, error.message)
    return redirect("registry:job", job_id=job.pk)


@role_required("admin")
@require_POST
def training_job_cancel(request: HtmxHttpRequest, job_id: int) -> HttpResponse:
    return _job_action(request, job_id, training_services.training_job_cancel)


@role_required("admin")
@require_POST
def training_job_resume(request: HtmxHttpRequest, job_id: int) -> HttpResponse:
    return _job_action(request, job_id, training_services.training_job_resume)
