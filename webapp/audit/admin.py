"""Django admin: the audit log, read only (rows are written by the services, never by hand)."""

from django.contrib import admin

from webapp.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "action", "actor_username", "target_label", "ip")
    list_filter = ("action",)
    search_fields = ("actor_username", "target_label")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
