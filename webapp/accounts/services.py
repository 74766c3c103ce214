"""Writes for accounts: creating users with a role, signing up (limited per client address),
unlocking a locked-out log-in, and an admin's decisions on teachers.

A teacher who signs up on the site (`user_signup`) starts pending; every other way of making a
teacher (an admin, `seed_demo`) starts approved. Approving, rejecting and trusting a teacher for
training are admin actions, each recorded in the audit log in the same transaction.
"""

from __future__ import annotations

from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from webapp.accounts.models import Role, TeacherStatus, User
from webapp.accounts.selectors import LOCKOUT_FIELDS
from webapp.audit.models import AuditAction
from webapp.audit.services import audit_record
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
    self_registered: bool = False,
) -> User:
    if role not in Role.values:
        raise ServiceError(f"Unknown role {role!r}.")
    if User.objects.filter(username__iexact=username).exists():
        raise ServiceError("That username is taken.", code="username_taken")
    user = User(username=username, email=email, role=role, is_staff=(role == Role.ADMIN))
    if self_registered and role == Role.TEACHER:
        user.teacher_status = TeacherStatus.PENDING
    if validate:
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise ServiceError(" ".join(exc.messages), code="weak_password") from exc
    user.set_password(password)
    user.save()
    return user


@transaction.atomic
def lockout_clear(*, kind: str, value: str, actor: User | None = None) -> int:
    """Unlock an account or an address at once (an admin's action): its recorded log-in failures
    are forgotten, and the audit log says who unlocked what. Returns the attempt rows removed."""
    field = LOCKOUT_FIELDS.get(kind)
    if field is None or not value:
        raise ServiceError("Choose an account or an address to unlock.", code="bad_lockout")
    deleted, _ = AccessAttempt.objects.filter(**{field: value}).delete()
    audit_record(
        action=AuditAction.LOGIN_UNLOCKED,
        actor=actor,
        details={"kind": kind, "value": value[:150], "attempt_rows": deleted},
    )
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
    user = user_create(
        username=username, password=password, role=role, email=email, self_registered=True
    )
    limit.record(client_address)
    return user


def _ensure_admin(actor) -> None:
    if not getattr(actor, "is_site_admin", False):
        raise ServiceError("Only site admins review teachers.", code="forbidden", status=403)


def _locked_teacher(teacher: User) -> User:
    locked = User.objects.select_for_update().filter(pk=teacher.pk, role=Role.TEACHER).first()
    if locked is None:
        raise ServiceError("That teacher does not exist.", code="not_found", status=404)
    return locked


def _decide(*, teacher: User, actor, status: str, action: str, note: str) -> User:
    _ensure_admin(actor)
    teacher = _locked_teacher(teacher)
    previous = teacher.teacher_status
    if previous == status:
        label = TeacherStatus(status).label.lower()
        raise ServiceError(f"{teacher.username} is already {label}.", code="unchanged")
    if status == TeacherStatus.REJECTED and previous == TeacherStatus.APPROVED:
        raise ServiceError(
            f"{teacher.username} is already approved; deactivate the account in django-admin "
            "to stop them.",
            code="already_approved",
        )
    teacher.teacher_status = status
    teacher.teacher_reviewed_by = actor
    teacher.teacher_reviewed_at = timezone.now()
    teacher.save(update_fields=["teacher_status", "teacher_reviewed_by", "teacher_reviewed_at"])
    details = {"previous": previous}
    if note.strip():
        details["note"] = note.strip()[:500]
    audit_record(action=action, actor=actor, target=teacher, details=details)
    return teacher


@transaction.atomic
def teacher_approve(*, teacher: User, actor: User) -> User:
    """Let a pending (or earlier rejected) teacher create classes and offer sets to students."""
    return _decide(
        teacher=teacher,
        actor=actor,
        status=TeacherStatus.APPROVED,
        action=AuditAction.TEACHER_APPROVED,
        note="",
    )


@transaction.atomic
def teacher_reject(*, teacher: User, actor: User, note: str = "") -> User:
    """Refuse a pending teacher: they keep their account and uploads, and still cannot publish."""
    return _decide(
        teacher=teacher,
        actor=actor,
        status=TeacherStatus.REJECTED,
        action=AuditAction.TEACHER_REJECTED,
        note=note,
    )


@transaction.atomic
def teacher_trust_update(*, teacher: User, actor: User, trusted: bool) -> User:
    """Trust an approved teacher to approve their own sets for the training pool, or stop."""
    _ensure_admin(actor)
    teacher = _locked_teacher(teacher)
    if trusted and teacher.teacher_status != TeacherStatus.APPROVED:
        raise ServiceError(
            "Approve the teacher before trusting them for training.", code="not_approved"
        )
    if teacher.trusted_for_training == trusted:
        return teacher
    teacher.trusted_for_training = trusted
    teacher.save(update_fields=["trusted_for_training"])
    audit_record(
        action=AuditAction.TEACHER_TRUSTED if trusted else AuditAction.TEACHER_UNTRUSTED,
        actor=actor,
        target=teacher,
    )
    return teacher
