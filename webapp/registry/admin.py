"""Django admin views of the registry, read-mostly: promotion and jobs go through the dashboard's
services (gate, swap broadcast, Celery), so editing those rows here would bypass them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin
from django.http import HttpRequest

from webapp.registry.models import (
    Evaluation,
    ModelVersion,
    PromotionEvent,
    TrainingJob,
    TrainingMetric,
    TrainingSample,
)

if TYPE_CHECKING:
    from django.db.models import Model


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["label", "status", "path", "training_job", "created_at", "promoted_at"]
    list_filter = ["status"]
    search_fields = ["label", "path"]
    readonly_fields = ["status", "promoted_at"]


@admin.register(Evaluation)
class EvaluationAdmin(admin.ModelAdmin):
    list_display = ["model_version", "status", "split", "problem_count", "created_at"]
    list_filter = ["status"]


@admin.register(PromotionEvent)
class PromotionEventAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "action",
        "model_version",
        "previous_champion",
        "actor",
        "override",
    ]
    list_filter = ["action", "override"]

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "status",
        "stage",
        "algorithm",
        "base_model",
        "current_step",
        "created_at",
    ]
    list_filter = ["status", "stage", "algorithm"]
    readonly_fields = ["status", "run_token", "worker_hostname", "worker_pid", "heartbeat_at"]


admin.site.register(TrainingMetric)
admin.site.register(TrainingSample)
