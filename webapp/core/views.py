"""The home redirect and /healthz."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render

from webapp.core.health import system_health
from webapp.core.roles import home_url_name_for


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return redirect(home_url_name_for(request.user))


def healthz(request: HttpRequest) -> HttpResponse:
    """JSON for machines (the default); a readable page when a browser asks for HTML."""
    report = system_health()
    status = 200 if report["state"] != "down" else 503
    wants_html = "text/html" in request.headers.get("Accept", "") and "format" not in request.GET
    if wants_html:
        return render(request, "core/healthz.html", {"report": report}, status=status)
    return JsonResponse(report, status=status)
