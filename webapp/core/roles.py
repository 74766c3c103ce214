"""The one way to protect a view or a consumer by role.

`role_required("teacher")` on a view sends an anonymous visitor to the log-in page and answers 403 to
a signed-in user of another role. Consumers call `user_has_role(scope["user"], ...)` before accepting.
Site admins may use every page. `ensure_may_publish` is the one check, made by the services, that a
teacher an admin has not approved yet does not reach students.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django_htmx.http import HttpResponseClientRedirect

from webapp.accounts.models import Role
from webapp.core.errors import ServiceError

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser

    from webapp.accounts.models import User


def user_has_role(user: User | AnonymousUser | None, *roles: str) -> bool:
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if user.is_site_admin:
        return True
    return user.role in roles


def _to_login(request: HttpRequest) -> HttpResponse:
    """The log-in page, then back. An htmx request would follow a plain redirect inside its XHR
    and swap the log-in page into a part of the page, so it is told to load the log-in page as a
    whole, coming back to the page the person was on (not to the fragment's URL)."""
    htmx = getattr(request, "htmx", None)
    if htmx:
        back = htmx.current_url_abs_path or "/"
        return HttpResponseClientRedirect(redirect_to_login(back).url)
    return redirect_to_login(request.get_full_path())


def role_required(*roles: str) -> Callable:
    """Decorate a function view so only signed-in users with one of `roles` (or admins) reach it."""
    unknown = set(roles) - set(Role.values)
    assert not unknown, f"unknown roles {unknown}"

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                return _to_login(request)
            if not user_has_role(request.user, *roles):
                raise PermissionDenied("This page is not available for your role.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def ensure_may_publish(user: User | AnonymousUser | None) -> None:
    """Raise a 403 ServiceError unless `user` may reach students (an approved teacher or an admin)."""
    if getattr(user, "may_publish", False):
        return
    raise ServiceError(
        "Your teacher account is awaiting approval by an administrator. Until then you can "
        "upload and preview problem sets, but not create classes, assign sets or offer "
        "practice sets to students.",
        code="teacher_not_approved",
        status=403,
    )


def home_url_name_for(user: User) -> str:
    """The URL name of the home page a user lands on after logging in."""
    if user.is_site_admin:
        return "registry:dashboard"
    if user.role == Role.TEACHER:
        return "classes:teacher_home"
    return "tutoring:student_home"
