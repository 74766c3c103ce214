"""Django admin for problem sets, problems and staged uploads (support and inspection)."""

from django.contrib import admin

from webapp.problems.models import Problem, ProblemSet, ProblemUpload


@admin.register(ProblemSet)
class ProblemSetAdmin(admin.ModelAdmin):
    list_display = (
        "title",
        "owner",
        "source_format",
        "is_practice",
        "is_public",
        "training_approved_at",
        "created_at",
    )
    list_filter = ("is_practice", "is_public", "source_format")
    search_fields = ("title", "owner__username")
    raw_id_fields = ("owner",)
    # Decided on the dashboard's problem sets page, where each decision is audited.
    readonly_fields = (
        "is_public",
        "made_public_by",
        "made_public_at",
        "training_approved_by",
        "training_approved_at",
    )


@admin.register(Problem)
class ProblemAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "problem_set",
        "position",
        "domain",
        "answer_kind",
        "excluded_from_training",
    )
    list_filter = ("domain", "answer_kind", "excluded_from_training")
    search_fields = ("statement", "content_key")
    raw_id_fields = ("problem_set", "created_by")


@admin.register(ProblemUpload)
class ProblemUploadAdmin(admin.ModelAdmin):
    list_display = (
        "filename",
        "owner",
        "source_format",
        "ready_count",
        "error_count",
        "created_at",
    )
    raw_id_fields = ("owner", "target_set")
    # No inline for its items: thousands of staged rows would make the change page unusable.
