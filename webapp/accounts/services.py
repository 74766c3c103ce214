"""Writes for accounts: creating users with a role, signing up (limited per client address), and
unlocking a locked-out log-in."""

from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from webapp.accounts.models import Role, User
from webapp.accounts.selectors import LOCKOUT_FIELDS
from webapp.core.errors import ServiceError
from webapp.core.rate_limits import Window, WindowLimit


def signup_limit() -> WindowLimit:
    return WindowLimit(
        "signup",
        [
            Window(limit=settings.SIGNUP_LIMIT_PER_IP_PER_HOUR, seconds=3600),
            Window(limit=settings.SIGNUP_LIMIT_PER_IP_PER_DAY, seconds=86400),
        ],
    )


@transaction.atomic
def user_create(
    *,
    username: str,
    password: str,
    role: str = Role.STUDENT,
    email: str = "",
    validate: bool = True,
) -> User:
    if role not in Role.values:
        raise ServiceError(f"Unknown role {role!r}.")
    if User.objects.filter(username__iexact=username).exists():
        raise ServiceError("That username is taken.", code="username_taken")
    user = User(username=username, email=email, role=role, is_staff=(role == Role.ADMIN))
    if validate:
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise ServiceError(" ".join(exc.messages), code="weak_password") from exc
    user.set_password(password)
    user.save()
    return user


def lockout_clear(*, kind: str, value: str) -> int:
    """Unlock an account or an address at once (an admin's action): its recorded log-in failures
    are forgotten. Returns the number of attempt rows removed."""
    field = LOCKOUT_FIELDS.get(kind)
    if field is None or not value:
        raise ServiceError("Choose an account or an address to unlock.", code="bad_lockout")
    deleted, _ = AccessAttempt.objects.filter(**{field: value}).delete()
    return deleted


def user_signup(
    *, username: str, password: str, role: str, email: str = "", client_address: str
) -> User:
    """A self-registered account (student or teacher). Refused (429) once SIGNUP_LIMIT_PER_IP_*
    accounts were created from the same client address this hour or today."""
    if role not in (Role.STUDENT, Role.TEACHER):
        raise ServiceError("Choose student or teacher.", code="bad_role")
    limit = signup_limit()
    blocked_until = limit.blocked_until(client_address)
    if blocked_until is not None:
        raise ServiceError(
            "Too many accounts were created from your network recently. Try again after "
            f"{timezone.localtime(blocked_until):%H:%M %Z} "
            f"({timezone.localtime(blocked_until):%d %b}), or ask your teacher for help.",
            code="signup_limited",
            status=429,
        )
    user = user_create(username=username, password=password, role=role, email=email)
    limit.record(client_address)
    return user
