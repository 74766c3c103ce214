"""Writing audit rows: `audit_record`, called by the service that performs the action.

Call it inside the action's own transaction (every caller here is `transaction.atomic`): the row
then commits with the action or not at all, so the log never claims an action that rolled back,
and never misses one that committed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models

from webapp.audit.models import AuditAction, AuditEvent
from webapp.audit.request_context import current_ip

if TYPE_CHECKING:
    from webapp.accounts.models import User

_LABEL_CHARS = 200


def audit_record(
    *,
    action: AuditAction | str,
    actor: User | None = None,
    actor_username: str = "",
    target: models.Model | None = None,
    details: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEvent:
    """Record one action. `actor` is the signed-in user (None for the system or an anonymous
    caller, then `actor_username` may name who was claimed); `ip` defaults to the current
    request's client address."""
    if action not in AuditAction.values:
        raise ValueError(f"Unknown audit action {action!r}.")
    signed_in = actor is not None and getattr(actor, "is_authenticated", False)
    return AuditEvent.objects.create(
        action=action,
        actor=actor if signed_in else None,
        actor_username=(
            actor.get_username() if actor is not None and signed_in else actor_username
        )[:150],
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=str(target)[:_LABEL_CHARS] if target is not None else "",
        details=details or {},
        ip=ip if ip is not None else current_ip(),
    )
