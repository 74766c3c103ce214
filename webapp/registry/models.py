"""Model versions, training jobs and their metrics, evaluations and promotion events.

Exactly one version is the champion at a time (a partial unique constraint enforces it); every
generation records the version that produced it, and rollback is promoting an earlier version.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q


class VersionStatus(models.TextChoices):
    CANDIDATE = "candidate", "Candidate"
    CHAMPION = "champion", "Champion"
    RETIRED = "retired", "Retired"


class ModelVersion(models.Model):
    label = models.CharField(max_length=100, unique=True)
    path = models.CharField(max_length=500, help_text="Checkpoint directory or hub id.")
    status = models.CharField(
        max_length=16, choices=VersionStatus.choices, default=VersionStatus.CANDIDATE
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    training_job = models.ForeignKey(
        "TrainingJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    manifest = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    promoted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="champion"), name="one_champion"
            )
        ]

    def __str__(self) -> str:
        return self.label


class EvaluationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class Evaluation(models.Model):
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, related_name="evaluations"
    )
    split = models.CharField(max_length=64, default="held-out")
    status = models.CharField(
        max_length=16, choices=EvaluationStatus.choices, default=EvaluationStatus.PENDING
    )
    # What to evaluate on: {"n_per_level": n, "seed": s} (training.evaluate's held-out sets).
    options = models.JSONField(default=dict, blank=True)
    # {"math": {"accuracy": .., "n": .., "correct": .., "ci_low": .., "ci_high": ..,
    #           "by_level": {...}}, ...}
    results = models.JSONField(default=dict)
    # SHA-256 of the held-out problems' keys: two evaluations are comparable when it matches.
    problems_fingerprint = models.CharField(max_length=64, blank=True)
    problem_count = models.PositiveIntegerField(default=0)
    # training.evaluate's full report minus the per-level rows: engine, timing, overall, examples.
    report = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    # The process running it (see liveness.py): a killed worker's evaluation is re-queued.
    worker_hostname = models.CharField(max_length=255, blank=True)
    worker_pid = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]


class PromotionAction(models.TextChoices):
    PROMOTE = "promote", "Promote"
    ROLLBACK = "rollback", "Rollback"


class PromotionEvent(models.Model):
    action = models.CharField(
        max_length=16, choices=PromotionAction.choices, default=PromotionAction.PROMOTE
    )
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, related_name="promotions"
    )
    previous_champion = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    override = models.BooleanField(default=False)
    reason = models.TextField(blank=True)
    # The gate's per-domain comparison at the moment of the decision (see services.promotion_gate).
    gate = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    CANCELLING = "cancelling", "Cancelling"
    CANCELLED = "cancelled", "Cancelled"
    FAILED = "failed", "Failed"
    SUCCEEDED = "succeeded", "Succeeded"


# A job in one of these will not run again (a failed job is resumed as a new run of it).
TERMINAL_JOB_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


class TrainingJob(models.Model):
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    base_model = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="jobs")
    stage = models.CharField(max_length=32)
    algorithm = models.CharField(max_length=16, default="c3po")
    hyperparameters = models.JSONField(default=dict)
    problem_filter = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    celery_task_id = models.CharField(max_length=64, blank=True)
    output_dir = models.CharField(max_length=500, blank=True)
    current_step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    log_tail = models.TextField(blank=True)
    # What the trainer was given (recorded so a run can be reproduced and resumed identically).
    spec = models.JSONField(default=dict, blank=True)
    # Who runs the job now: a run refreshes heartbeat_at every few seconds; a stale heartbeat, or
    # a dead pid on this host, means the run is gone and the job may be resumed.
    run_token = models.CharField(max_length=32, blank=True)
    worker_hostname = models.CharField(max_length=255, blank=True)
    worker_pid = models.PositiveIntegerField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # A process group's ranks as its supervisor last reported them (training.observer.RankBeat):
    # [{"rank", "host", "pid", "beat_at" (ISO time), "exited"}]; empty for a single-process run.
    # Replaced whole by each report, so a resume at another world size shows only its own ranks.
    rank_beats = models.JSONField(default=list, blank=True)
    resume_count = models.PositiveIntegerField(default=0)
    last_checkpoint_step = models.PositiveIntegerField(null=True, blank=True)
    result_model = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"training job #{self.pk} ({self.stage})"


class TrainingMetric(models.Model):
    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="metrics")
    step = models.PositiveIntegerField()
    metrics = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["job_id", "step"]
        constraints = [models.UniqueConstraint(fields=["job", "step"], name="one_metric_per_step")]


class TrainingSample(models.Model):
    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="samples")
    step = models.PositiveIntegerField()
    prompt = models.TextField()
    completion = models.TextField()
    reward = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-step", "-id"]
