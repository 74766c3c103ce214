"""Django admin for classes, enrolments and assignments (support and inspection)."""

from django.contrib import admin

from webapp.classes.models import Assignment, Classroom, Enrollment


@admin.register(Classroom)
class ClassroomAdmin(admin.ModelAdmin):
    list_display = ("name", "teacher", "join_code", "created_at")
    search_fields = ("name", "join_code", "teacher__username")
    raw_id_fields = ("teacher",)


@admin.register(Enrollment)
class EnrollmentAdmin(admin.ModelAdmin):
    list_display = ("classroom", "student", "joined_at")
    raw_id_fields = ("classroom", "student")


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ("classroom", "problem_set", "due_at", "created_at")
    raw_id_fields = ("classroom", "problem_set")
