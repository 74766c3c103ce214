"""The home redirect and /healthz."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.crypto import constant_time_compare

from webapp.core.health import system_health
from webapp.core.http import AuthenticatedHttpRequest
from webapp.core.roles import home_url_name_for

ANONYMOUS_STATE_KEY = "ringtutor:healthz:state"
ANONYMOUS_STATE_SECONDS = 5


@login_required
def home(request: AuthenticatedHttpRequest) -> HttpResponse:
    return redirect(home_url_name_for(request.user))


def _sees_health_details(request: HttpRequest) -> bool:
    """Site admins and callers with HEALTHZ_TOKEN (`Authorization: Bearer <token>`) see every check;
    anyone else only the overall state (no pids, host names or model paths)."""
    user = request.user
    if user.is_authenticated and user.is_site_admin:
        return True
    token = settings.HEALTHZ_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return bool(token) and scheme.lower() == "bearer" and constant_time_compare(given, token)


def _overall_state() -> str:
    # Every check runs for the state (a Celery ping waits up to a second): anonymous callers share
    # one answer for a few seconds, so a flood of them costs one check per process per interval.
    state = cache.get(ANONYMOUS_STATE_KEY)
    if state is None:
        state = system_health()["state"]
        cache.set(ANONYMOUS_STATE_KEY, state, ANONYMOUS_STATE_SECONDS)
    return state


def healthz(request: HttpRequest) -> HttpResponse:
    """JSON for machines (the default); a readable page when a browser asks for HTML."""
    if _sees_health_details(request):
        report = system_health()
    else:
        report = {"state": _overall_state()}
    status = 200 if report["state"] != "down" else 503
    wants_html = "text/html" in request.headers.get("Accept", "") and "format" not in request.GET
    if wants_html:
        return render(request, "core/healthz.html", {"report": report}, status=status)
    return JsonResponse(report, status=status)
