"""Sign-up, log-in and log-out pages, and the admins' page of log-in lockouts."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from webapp.accounts.forms import SignupForm
from webapp.accounts.selectors import lockouts_current
from webapp.accounts.services import lockout_clear, user_signup
from webapp.core.errors import ServiceError
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


@role_required("admin")
@require_POST
def lockout_unlock(request: HttpRequest) -> HttpResponse:
    kind, value = request.POST.get("kind", ""), request.POST.get("value", "")
    try:
        lockout_clear(kind=kind, value=value)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"Unlocked {'address' if kind == 'address' else 'account'} {value}."
        )
    return redirect("accounts:lockouts")
