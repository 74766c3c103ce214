"""Attempts, generations, own answers and feedback.

A Generation is one request to the inference worker: its row is the durable record of what happened
(status, full text, extracted answer, verdict and what it was checked against, token counts, timings
and the model version that produced it). Live deltas travel through Redis; the row is written when
the generation ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models

from webapp.classes.models import Assignment
from webapp.problems.models import Problem

if TYPE_CHECKING:
    from webapp.tutoring.quotas import GenerationQuota


class AttemptMode(models.TextChoices):
    SOLVE = "solve", "Full solution"
    TUTOR = "tutor", "Hints first"


class Attempt(models.Model):
    student = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="attempts"
    )
    problem = models.ForeignKey(Problem, on_delete=models.CASCADE, related_name="attempts")
    assignment = models.ForeignKey(
        Assignment, null=True, blank=True, on_delete=models.SET_NULL, related_name="attempts"
    )
    mode = models.CharField(max_length=8, choices=AttemptMode.choices, default=AttemptMode.SOLVE)
    hints_revealed = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    # Not stored: the generation the service that started this attempt queued, on the instance it
    # returns (the page answering the click draws it without reading it back).
    first_generation: Generation | None = None

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["student", "-created_at"])]


class GenerationKind(models.TextChoices):
    SOLUTION = "solution", "Solution"
    HINT = "hint", "Hint"


class GenerationStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Stopped"
    FAILED = "failed", "Failed"


# Queued or running: a worker may still produce text for it (the per-student concurrency limit,
# the page's "busy", the worker's claim and give-up).
ACTIVE_GENERATION_STATUSES = (GenerationStatus.QUEUED, GenerationStatus.RUNNING)


class Verdict(models.TextChoices):
    CORRECT = "correct", "Correct"
    WRONG = "wrong", "Wrong"
    UNVERIFIABLE = "unverifiable", "No reference answer"


class VerdictSource(models.TextChoices):
    """What the worker checked a finished solution's final answer against, when it stored it:
    the problem's answer key first, else the exact value of a statement that is a pure calculation
    (`webapp.tutoring.grading`), else nothing could check it."""

    ANSWER_KEY = "answer_key", "Answer key"
    CALCULATION = "calculation", "Exact calculation"
    NONE = "none", "Nothing could check it"


class Generation(models.Model):
    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, related_name="generations")
    kind = models.CharField(
        max_length=16, choices=GenerationKind.choices, default=GenerationKind.SOLUTION
    )
    status = models.CharField(
        max_length=16, choices=GenerationStatus.choices, default=GenerationStatus.QUEUED
    )
    # For a hint: how many hints of this attempt were asked for before it (0 for the first). The
    # worker gets it with the queue entry; the hint flow and the pages read it here.
    hint_index = models.PositiveSmallIntegerField(null=True, blank=True)
    model_version = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The version label the worker reported, kept even if the registry row is deleted.
    model_version_label = models.CharField(max_length=100, blank=True)
    worker_id = models.CharField(max_length=100, blank=True)
    reasoning = models.TextField(blank=True)
    answer = models.TextField(blank=True)
    final_answer = models.CharField(max_length=500, blank=True)
    verdict = models.CharField(max_length=16, choices=Verdict.choices, blank=True)
    # Where `verdict` came from, stored with it by the worker for every finished solution; blank
    # for hints, unfinished rows, and solutions finished before the worker recorded it (the page
    # then checks a calculation as it always did, `check_selectors`).
    verdict_source = models.CharField(max_length=16, choices=VerdictSource.choices, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    time_to_first_token_ms = models.FloatField(null=True, blank=True)
    # From the first generated token to the end of the reasoning (`</think>`): "thought for 12 s".
    thinking_ms = models.FloatField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    # How sure the model was: the probability of the least likely token it wrote
    # (training.confidence); None for generations stored before it was measured.
    confidence = models.FloatField(null=True, blank=True)
    # The answer reached the length limit before the model finished it.
    cut_off = models.BooleanField(default=False)
    cancel_requested = models.BooleanField(default=False)
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # Not stored: on the instance `generation_enqueue` returns, the student's quota with this
    # generation counted (None when it filled a window: read the quota again).
    quota_after: GenerationQuota | None = None

    class Meta:
        ordering = ["-queued_at"]
        indexes = [models.Index(fields=["status"])]

    @property
    def is_finished(self) -> bool:
        return self.status in {
            GenerationStatus.DONE,
            GenerationStatus.CANCELLED,
            GenerationStatus.FAILED,
        }

    @property
    def duration_seconds(self) -> float | None:
        return None if self.duration_ms is None else self.duration_ms / 1000

    @property
    def thinking_seconds(self) -> float | None:
        return None if self.thinking_ms is None else self.thinking_ms / 1000

    @property
    def student_feedback(self) -> Feedback | None:
        """The attempt's student's rating of this generation (uses a prefetch of `feedback`)."""
        return next((f for f in self.feedback.all() if f.user_id == self.attempt.student_id), None)


class OwnAnswer(models.Model):
    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, related_name="own_answers")
    answer = models.CharField(max_length=500)
    is_correct = models.BooleanField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]


class Feedback(models.Model):
    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    rating = models.SmallIntegerField(choices=[(1, "Helpful"), (-1, "Not helpful")])
    tags = models.JSONField(default=list, blank=True)
    text = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["generation", "user"], name="one_feedback_per_user")
        ]
