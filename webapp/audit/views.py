"""The admin's audit page: every recorded action, newest first, filtered by action or person."""

from __future__ import annotations

from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from webapp.audit.models import AuditAction
from webapp.audit.selectors import audit_event_list
from webapp.core.http import HtmxHttpRequest
from webapp.core.params import param_text
from webapp.core.roles import role_required

EVENTS_PER_PAGE = 50
# Query values are echoed into the page and the pagination links: keep them short.
_QUERY_CHARS = 150


@role_required("admin")
@require_GET
def audit_log(request: HtmxHttpRequest) -> HttpResponse:
    action = param_text(request.GET, "action", max_chars=_QUERY_CHARS)
    if action not in AuditAction.values:
        action = ""
    who = param_text(request.GET, "who", max_chars=_QUERY_CHARS)
    events = Paginator(audit_event_list(action=action, who=who), EVENTS_PER_PAGE)
    filters = {key: value for key, value in (("action", action), ("who", who)) if value}
    return render(
        request,
        "audit/audit_log.html",
        {
            "page": events.get_page(request.GET.get("page")),
            "actions": AuditAction.choices,
            "action": action,
            "who": who,
            "filter_query": urlencode(filters),
        },
    )
