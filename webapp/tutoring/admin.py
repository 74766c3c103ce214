"""Django admin for tutoring: attempts with their generations, own answers and feedback, read
mostly (support and training-data review), never a place to edit what a worker wrote."""

from django.contrib import admin

from webapp.tutoring.models import Attempt, Feedback, Generation, OwnAnswer


class GenerationInline(admin.TabularInline):
    model = Generation
    fields = (
        "kind",
        "hint_index",
        "status",
        "final_answer",
        "verdict",
        "verdict_source",
        "model_version_label",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


class OwnAnswerInline(admin.TabularInline):
    model = OwnAnswer
    fields = ("answer", "is_correct", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Attempt)
class AttemptAdmin(admin.ModelAdmin):
    list_display = ("id", "student", "problem", "mode", "hints_revealed", "created_at")
    list_filter = ("mode",)
    search_fields = ("student__username", "problem__statement")
    raw_id_fields = ("student", "problem", "assignment")
    inlines = [GenerationInline, OwnAnswerInline]


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "attempt",
        "kind",
        "status",
        "verdict",
        "verdict_source",
        "model_version_label",
        "queued_at",
    )
    list_filter = ("status", "kind", "verdict", "verdict_source", "model_version_label")
    search_fields = ("final_answer", "attempt__student__username")
    raw_id_fields = ("attempt", "model_version")
    readonly_fields = ("queued_at", "started_at", "finished_at")


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    list_display = ("generation", "user", "rating", "tags", "created_at")
    list_filter = ("rating",)
    raw_id_fields = ("generation", "user")
