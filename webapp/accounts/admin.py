"""Django admin registration for users, with the role editable."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from webapp.accounts.models import User


@admin.register(User)
class RingUserAdmin(UserAdmin):
    fieldsets = UserAdmin.fieldsets + (("Ring Tutor", {"fields": ("role",)}),)
    list_display = ("username", "email", "role", "is_staff", "is_active")
    list_filter = ("role", "is_staff", "is_active")
