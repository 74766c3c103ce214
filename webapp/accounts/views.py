"""Sign-up, log-in and log-out pages."""

from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from webapp.accounts.forms import SignupForm
from webapp.accounts.services import user_create
from webapp.core.errors import ServiceError
from webapp.core.roles import home_url_name_for


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect(home_url_name_for(request.user))
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = user_create(
                username=form.cleaned_data["username"],
                email=form.cleaned_data.get("email", ""),
                password=form.cleaned_data["password1"],
                role=form.cleaned_data["role"],
            )
        except ServiceError as exc:
            form.add_error(None, exc.message)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect(home_url_name_for(user))
    return render(request, "accounts/signup.html", {"form": form})
