"""What the apps' views share: the request type django-htmx decorates, and a selector's 404."""

from django.http import Http404, HttpRequest
from django_htmx.middleware import HtmxDetails

from webapp.core.errors import ServiceError


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def found_or_404(selector, **kwargs):
    """A selector's row, or Django's 404 page when the selector says there is none for this user
    (a ServiceError with status 404); any other ServiceError goes up to the view."""
    try:
        return selector(**kwargs)
    except ServiceError as error:
        if error.status == 404:
            raise Http404(error.message) from error
        raise
