"""Log-in lockout on top of django-axes: a limit per account and another per client address, and
the page a locked-out visitor sees (the admins' lockout page reads and clears the same rows:
accounts.selectors.lockouts_current, accounts.services.lockout_clear).

axes records every failed log-in (one row per username, address and browser) and refuses a locked
account or address before its password is checked. It compares one failure count with one limit;
`LockoutHandler` counts the failures of the account and of the address separately and reports them
in units of the account limit, so each meets its own setting (LOGIN_FAILURE_LIMIT_PER_ACCOUNT,
LOGIN_FAILURE_LIMIT_PER_IP). A lock lasts LOGIN_LOCKOUT_MINUTES after the last counted failure;
attempts made while locked out are refused without being counted, so the end time on the page holds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_cool_off
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

ACCOUNT = "username"
ADDRESS = "ip_address"


def failure_limits() -> dict[str, int]:
    return {
        ACCOUNT: settings.LOGIN_FAILURE_LIMIT_PER_ACCOUNT,
        ADDRESS: settings.LOGIN_FAILURE_LIMIT_PER_IP,
    }


def lock_end(rows: list[tuple[datetime, int]], limit: int) -> datetime | None:
    """When a group of attempt rows (time of the last failure, failures) stops being locked: rows
    expire oldest first, a cool-off after their last failure; None when it is not locked now."""
    remaining = sum(failures for _, failures in rows)
    if remaining < limit:
        return None
    cool_off = get_cool_off()
    for attempt_time, failures in sorted(rows):
        remaining -= failures
        if remaining < limit:
            return attempt_time + cool_off
    return None  # unreachable: the sum reaches 0 < limit


class LockoutHandler(AxesDatabaseHandler):
    """axes' database handler with a separate failure limit for the account and the address."""

    def _groups(self, request, credentials: dict | None):
        """(limit, recent attempts) for the account and for the address of this request."""
        limits = failure_limits()
        attempts = self.get_user_attempts(request, credentials)
        for parameter, group in zip(settings.AXES_LOCKOUT_PARAMETERS, attempts, strict=True):
            yield limits.get(parameter, limits[ACCOUNT]), group

    def get_failures(self, request: HttpRequest, credentials: dict | None = None) -> int:
        # axes locks when this reaches AXES_FAILURE_LIMIT (the account limit). The address's count
        # is scaled so that it reaches the account limit exactly when it reaches its own limit.
        account_limit = failure_limits()[ACCOUNT]
        worst = 0
        for limit, attempts in self._groups(request, credentials):
            failures = attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
            worst = max(worst, failures * account_limit // limit)
        return worst

    def lockout_ends_at(
        self, request: HttpRequest, credentials: dict | None = None
    ) -> datetime | None:
        """When every lock that applies to this request has ended (None: not locked)."""
        ends = []
        for limit, attempts in self._groups(request, credentials):
            rows = list(attempts.values_list("attempt_time", "failures_since_start"))
            end = lock_end(rows, limit)
            if end is not None:
                ends.append(end)
        return max(ends) if ends else None


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """The log-in page with the lockout message and when to retry (AXES_LOCKOUT_CALLABLE), 429.

    axes' async middleware passes the credentials where the original response belongs, so both
    are read from the request instead.
    """
    credentials = getattr(request, "axes_credentials", None) or (
        credentials if isinstance(credentials, dict) else None
    )
    ends_at = LockoutHandler().lockout_ends_at(request, credentials)
    if ends_at is None:  # a lock that ended between the check and this page: say a cool-off
        ends_at = timezone.now() + get_cool_off()
    minutes = max(1, round((ends_at - timezone.now()).total_seconds() / 60))
    username = get_client_username(request, credentials) or ""
    form = AuthenticationForm(request, initial={"username": username})
    context = {
        "form": form,
        "next": request.POST.get("next", "") if request.method == "POST" else "",
        "lockout": {"ends_at": timezone.localtime(ends_at), "minutes": minutes},
    }
    return render(request, "accounts/login.html", context, status=settings.AXES_HTTP_RESPONSE_CODE)


def axes_username(request: HttpRequest, credentials: dict | None = None) -> str | None:
    """The typed username as axes stores and looks it up (AXES_USERNAME_CALLABLE).

    axes reads the raw form field before the log-in form validates it, and keeps it in a 255-character
    column: an overlong name was a database error (500), and a NUL byte, which PostgreSQL refuses in
    text, was one too. Cut to the User model's 150 characters and drop NULs, as the form would.
    """
    field = settings.AXES_USERNAME_FORM_FIELD  # axes.conf (imported above) sets its default
    value = credentials.get(field) if credentials else request.POST.get(field)
    if not isinstance(value, str):
        return value
    return value.replace("\x00", "")[:150]
