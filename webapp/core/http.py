"""What the apps' views share: the request types (django-htmx's, and a signed-in user's), a
selector's 404, and the one way an htmx request is refused.

An htmx request that a ServiceError (or an invalid form) refuses is answered with status 422 and
HTML that says why: `refused(response)`. Every page's htmx config (base.html) swaps 422 like a 2xx,
so the message lands where the request's result would have; `retarget` sends it elsewhere instead
(`HX-Retarget`, e.g. a page's alert region). Other 4xx/5xx are not swapped: htmx leaves the page as
it was. (The status, not a custom header, says "refused", so tests, logs and the browser's network
panel all see it.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django_htmx.middleware import HtmxDetails

from webapp.core.errors import ServiceError

if TYPE_CHECKING:
    from datetime import datetime

    from webapp.accounts.models import User

Row = TypeVar("Row")


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


class AuthenticatedHttpRequest(HtmxHttpRequest):
    """The request of a view behind `login_required` or `role_required`: its user is signed in, so
    it passes as the `User` the services and selectors take (not `User | AnonymousUser`)."""

    user: User  # narrower than HttpRequest's `User | AnonymousUser`, as the decorator ensures


def found_or_404(selector: Callable[..., Row], **kwargs: Any) -> Row:
    """A selector's row, or Django's 404 page when the selector says there is none for this user
    (a ServiceError with status 404); any other ServiceError goes up to the view."""
    try:
        return selector(**kwargs)
    except ServiceError as error:
        if error.status == 404:
            raise Http404(error.message) from error
        raise


REFUSED = 422  # Unprocessable Content: understood, and refused for a reason the page shows


def refused(
    response: HttpResponse,
    *,
    retarget: str | None = None,
    reswap: str = "innerHTML",
    retry_at: datetime | None = None,
) -> HttpResponse:
    """Mark `response` (HTML saying why) as a refusal: status 422, which htmx swaps (base.html).

    With `retarget` (a CSS selector), htmx swaps it into that element with `reswap` instead of the
    request's own target. Also right for a page posted without htmx: the status still says it.
    A refusal by a rate limit passes its ServiceError's `retry_at` (`with_retry_after`).
    """
    response.status_code = REFUSED
    if retarget is not None:
        response["HX-Retarget"] = retarget
        response["HX-Reswap"] = reswap
    return with_retry_after(response, retry_at)


def with_retry_after(response: HttpResponse, retry_at: datetime | None) -> HttpResponse:
    """`Retry-After` in whole seconds (at least 1) when a refusal says when the next request fits
    (a ServiceError's `retry_at`); `response` unchanged without one."""
    if retry_at is not None:
        seconds = math.ceil((retry_at - timezone.now()).total_seconds())
        response["Retry-After"] = str(max(1, seconds))
    return response
