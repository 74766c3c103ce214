"""Writes for accounts: creating users with a role."""

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from webapp.accounts.models import Role, User
from webapp.core.errors import ServiceError


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
