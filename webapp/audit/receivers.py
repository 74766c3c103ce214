"""Audit rows for log-in events that Django and django-axes announce as signals.

`user_login_failed` (Django) carries the credentials with the password already removed; only the
username is kept. `user_locked_out` comes from django-axes, which is connected only when axes is
installed: importing `axes.signals` registers axes' own handlers and needs its models, so it is
never imported on a site that does not use axes.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest

from webapp.audit.models import AuditAction
from webapp.audit.request_context import request_ip, valid_ip
from webapp.audit.services import audit_record

# Usernames come from the form: keep the row bounded whatever was typed.
_USERNAME_CHARS = 150


def record_login_failed(
    sender: Any,
    credentials: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
    **kwargs: Any,
) -> None:
    username = str((credentials or {}).get("username") or "")[:_USERNAME_CHARS]
    audit_record(
        action=AuditAction.LOGIN_FAILED,
        actor_username=username,
        details={"username": username},
        ip=request_ip(request),
    )


def record_locked_out(
    sender: Any,
    request: HttpRequest | None = None,
    username: str | None = None,
    ip_address: str | None = None,
    **kwargs: Any,
) -> None:
    username = str(username or "")[:_USERNAME_CHARS]
    audit_record(
        action=AuditAction.LOGIN_LOCKED_OUT,
        actor_username=username,
        details={"username": username},
        ip=request_ip(request) or valid_ip(ip_address),
    )


def connect_login_signals() -> None:
    user_login_failed.connect(record_login_failed, dispatch_uid="audit_login_failed")
    if apps.is_installed("axes"):
        from axes.signals import user_locked_out

        user_locked_out.connect(record_locked_out, dispatch_uid="audit_locked_out")
