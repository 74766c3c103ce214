"""The one way a view reads a loose value from a query string or a POST body: through a form field.

`request.GET.get("x")` hands a view whatever was typed into the address bar: NUL bytes, which
PostgreSQL refuses (a 500), or digits of other scripts ("²".isdigit() is True, int("٣") is 3). These
helpers run the value through Django's form fields, which refuse NUL characters, and accept ids
made of ASCII digits only, within the database's integer range; anything else reads as absent, so
a hand-edited URL gets the page without the filter, never an error page.
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.http import QueryDict

MAX_ID = 2**63 - 1  # PostgreSQL bigint, the type of every primary key here


class _IdField(forms.IntegerField):
    def to_python(self, value):
        value = "" if value is None else str(value).strip()
        if value and not (value.isascii() and value.isdigit()):
            raise ValidationError("Enter a whole number.", code="invalid")
        return super().to_python(value)


def param_id(params: QueryDict, name: str) -> int | None:
    """A positive id written in ASCII digits, or None (missing, malformed, out of range)."""
    field = _IdField(required=False, min_value=1, max_value=MAX_ID)
    try:
        return field.clean(params.get(name, ""))
    except ValidationError:
        return None


def param_text(params: QueryDict, name: str, *, max_chars: int) -> str:
    """A text value cut to `max_chars`, stripped; "" when missing or not text (a NUL byte)."""
    field = forms.CharField(required=False, max_length=max_chars)
    try:
        return field.clean(params.get(name, "")[:max_chars])
    except ValidationError:
        return ""
