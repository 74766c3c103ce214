"""Sign-up (limited per client address), the admins' page of log-in lockouts, and the admin's
teacher review (approve, reject, trust for training).

Log-in and log-out are Django's own views (urls.py). A teacher who signs up here is pending until
an admin approves them on the review page.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from webapp.accounts import selectors, services
from webapp.accounts.forms import SignupForm
from webapp.accounts.models import TeacherStatus
from webapp.accounts.selectors import lockouts_current
from webapp.accounts.services import lockout_clear, user_signup
from webapp.core.errors import ServiceError
from webapp.core.http import AuthenticatedHttpRequest, HtmxHttpRequest
from webapp.core.params import param_text
from webapp.core.rate_limits import client_address
from webapp.core.roles import home_url_name_for, role_required


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect(home_url_name_for(request.user))
    form = SignupForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            user = user_signup(
                username=form.cleaned_data["username"],
                email=form.cleaned_data.get("email", ""),
                password=form.cleaned_data["password1"],
                role=form.cleaned_data["role"],
                client_address=client_address(request),
            )
        except ServiceError as exc:
            form.add_error(None, exc.message)
            status = 429 if exc.status == 429 else 200
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect(home_url_name_for(user))
    return render(request, "accounts/signup.html", {"form": form}, status=status)


# --- the admin's teacher review --------------------------------------------------------------

STATUS_TABS = [(status, label) for status, label in TeacherStatus.choices]


@role_required("admin")
@require_GET
def teacher_list(request: HtmxHttpRequest) -> HttpResponse:
    status = request.GET.get("status", TeacherStatus.PENDING)
    if status not in TeacherStatus.values:
        status = TeacherStatus.PENDING
    counts = selectors.teacher_status_counts()
    return render(
        request,
        "accounts/teacher_review.html",
        {
            "status": status,
            "tabs": [(value, label, counts[value]) for value, label in STATUS_TABS],
            "teachers": selectors.teacher_review_list(status=status),
            "pending_teacher_count": counts[TeacherStatus.PENDING],
        },
    )


_DECISIONS = {
    "approve": lambda teacher, actor, note: services.teacher_approve(teacher=teacher, actor=actor),
    "reject": lambda teacher, actor, note: services.teacher_reject(
        teacher=teacher, actor=actor, note=note
    ),
    "trust": lambda teacher, actor, note: services.teacher_trust_update(
        teacher=teacher, actor=actor, trusted=True
    ),
    "untrust": lambda teacher, actor, note: services.teacher_trust_update(
        teacher=teacher, actor=actor, trusted=False
    ),
}
_DONE = {
    "approve": "{name} is approved: they can now create classes and offer practice sets.",
    "reject": "{name} was not approved; they cannot reach students.",
    "trust": "{name} may now approve their own sets for training.",
    "untrust": "{name} no longer approves their own sets for training.",
}


@role_required("admin")
@require_POST
def teacher_decide(request: HtmxHttpRequest, teacher_id: int) -> HttpResponse:
    teacher = selectors.teacher_get(teacher_id=teacher_id)
    decision = request.POST.get("decision", "")
    if teacher is None or decision not in _DECISIONS:
        raise Http404("No such teacher or decision.")
    back = reverse("teacher_review:teacher_list") + f"?status={teacher.teacher_status}"
    try:
        _DECISIONS[decision](teacher, request.user, param_text(request.POST, "note", max_chars=500))
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _DONE[decision].format(name=teacher.username))
    return redirect(back)


@role_required("admin")
def lockouts(request: HttpRequest) -> HttpResponse:
    limits = {
        "account": settings.LOGIN_FAILURE_LIMIT_PER_ACCOUNT,
        "address": settings.LOGIN_FAILURE_LIMIT_PER_IP,
        "minutes": settings.LOGIN_LOCKOUT_MINUTES,
    }
    return render(
        request, "accounts/lockouts.html", {"lockouts": lockouts_current(), "limits": limits}
    )


# An account name or a client address as django-axes stores it (its columns hold 255 characters).
_UNLOCK_VALUE_CHARS = 255


@role_required("admin")
@require_POST
def lockout_unlock(request: AuthenticatedHttpRequest) -> HttpResponse:
    kind = request.POST.get("kind", "")
    value = param_text(request.POST, "value", max_chars=_UNLOCK_VALUE_CHARS)
    try:
        lockout_clear(kind=kind, value=value, actor=request.user)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"Unlocked {'address' if kind == 'address' else 'account'} {value}."
        )
    return redirect("accounts:lockouts")
