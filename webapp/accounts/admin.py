"""Django admin registration for users, with the role editable and the teacher approval shown."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from webapp.accounts.models import User


@admin.register(User)
class RingUserAdmin(UserAdmin):
    fieldsets = UserAdmin.fieldsets + (
        (
            "Ring Tutor",
            {
                "fields": (
                    "role",
                    "teacher_status",
                    "trusted_for_training",
                    "teacher_reviewed_by",
                    "teacher_reviewed_at",
                )
            },
        ),
    )
    # Decided on the dashboard's teachers page, where each decision is audited.
    readonly_fields = (
        "teacher_status",
        "trusted_for_training",
        "teacher_reviewed_by",
        "teacher_reviewed_at",
    )
    list_display = ("username", "email", "role", "teacher_status", "is_staff", "is_active")
    list_filter = ("role", "teacher_status", "is_staff", "is_active")
