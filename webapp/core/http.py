"""What the apps' views share: the request types (django-htmx's, and a signed-in user's), and a
selector's 404."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from django.http import Http404, HttpRequest
from django_htmx.middleware import HtmxDetails

from webapp.core.errors import ServiceError

if TYPE_CHECKING:
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
