"""One row per security-relevant action: who did what to which row, from where, when.

Rows are written by `services.audit_record` inside the transaction of the action they describe, so
an action that rolls back leaves no row claiming it happened. The actor's username is copied so a
row still reads correctly after the account is deleted; for a failed log-in it is the name typed.
"""

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone


class AuditAction(models.TextChoices):
    LOGIN_FAILED = "login.failed", "Log-in failed"
    LOGIN_LOCKED_OUT = "login.locked_out", "Log-in locked out"
    LOGIN_UNLOCKED = "login.unlocked", "Log-in lockout cleared"
    TEACHER_APPROVED = "teacher.approved", "Teacher approved"
    TEACHER_REJECTED = "teacher.rejected", "Teacher rejected"
    TEACHER_TRUSTED = "teacher.trusted", "Teacher trusted for training"
    TEACHER_UNTRUSTED = "teacher.untrusted", "Teacher no longer trusted for training"
    SET_MADE_PUBLIC = "set.made_public", "Set made public"
    SET_MADE_PRIVATE = "set.made_private", "Set made private"
    SET_TRAINING_APPROVED = "set.training_approved", "Set approved for training"
    SET_TRAINING_WITHDRAWN = "set.training_withdrawn", "Set withdrawn from training"
    MODEL_PROMOTED = "model.promoted", "Model promoted"
    MODEL_ROLLED_BACK = "model.rolled_back", "Model rolled back"
    JOB_LAUNCHED = "job.launched", "Training job launched"
    JOB_CANCELLED = "job.cancelled", "Training job cancelled"
    JOB_RESUMED = "job.resumed", "Training job resumed"


class AuditEvent(models.Model):
    action = models.CharField(max_length=40, choices=AuditAction.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_username = models.CharField(max_length=150, blank=True)
    # What the action was done to: "accounts.user" / "42" / "t-ada".
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=200, blank=True)
    details = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="audit_newest"),
            models.Index(fields=["action", "-created_at"], name="audit_action_newest"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} by {self.actor_username or '-'}"
