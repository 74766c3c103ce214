"""Reading the audit log: newest first, optionally one action or one person's rows."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from webapp.audit.models import AuditAction, AuditEvent


def audit_event_list(*, action: str = "", who: str = "") -> QuerySet[AuditEvent]:
    """Audit rows, newest first. `action` keeps one action (an unknown one matches nothing);
    `who` keeps rows whose actor or target is that username (exact, case-insensitive)."""
    events = AuditEvent.objects.select_related("actor").order_by("-created_at", "-id")
    if action:
        events = events.filter(action=action) if action in AuditAction.values else events.none()
    who = who.strip()
    if who:
        events = events.filter(
            Q(actor_username__iexact=who) | Q(target_type="accounts.user", target_label__iexact=who)
        )
    return events
