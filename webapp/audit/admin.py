"""Django admin: the audit log, read only (rows are written by the services, never by hand)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin
from django.http import HttpRequest

from webapp.audit.models import AuditEvent

if TYPE_CHECKING:
    from django.db.models import Model


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "action", "actor_username", "target_label", "ip")
    list_filter = ("action",)
    search_fields = ("actor_username", "target_label")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False
