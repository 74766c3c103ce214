"""Problem sets, problems, and uploads waiting for the teacher's confirmation.

Who sees a set: a practice set (`is_practice`, the teacher's choice) is listed for the students of
its teacher's classes, and for every student only once an admin makes it public (`is_public`);
an assigned set is open to the class it is assigned to. A problem with a reference answer that the
verifier can parse joins the training pool that fine-tuning jobs draw from when its set is approved
for training (by an admin, or by its teacher if an admin trusts them for training) and its teacher
has not excluded it. `content_key` is the normalised statement used to find
duplicates within an upload and against what is already stored. A `ProblemUpload` is a parsed file
shown as a preview: nothing becomes a Problem until the teacher confirms it.
"""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class Domain(models.TextChoices):
    MATH = "math", "Math"
    SCIENCE = "science", "Science"


class AnswerKind(models.TextChoices):
    EXPRESSION = "expression", "Expression"
    NUMBER = "number", "Number (tolerance, unit)"
    CHOICE = "choice", "Multiple choice"
    NONE = "none", "No reference answer"


class ProblemSet(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="problem_sets"
    )
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    source_format = models.CharField(max_length=16, blank=True)
    source_filename = models.CharField(max_length=255, blank=True)
    is_practice = models.BooleanField(
        default=False,
        help_text="Offered as practice to the students of the teacher's classes (and to every "
        "student once an admin makes it public).",
    )
    is_public = models.BooleanField(
        default=False, help_text="An admin made this practice set visible to every student."
    )
    made_public_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    made_public_at = models.DateTimeField(null=True, blank=True)
    # Set when an admin (or a teacher trusted for training) lets the set's problems into the
    # training pool; cleared when an untrusted teacher changes the problems afterwards.
    training_approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    training_approved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title

    @property
    def is_training_approved(self) -> bool:
        return self.training_approved_at is not None


class Problem(models.Model):
    problem_set = models.ForeignKey(
        ProblemSet, null=True, blank=True, on_delete=models.CASCADE, related_name="problems"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    position = models.PositiveIntegerField(default=0)
    statement = models.TextField()
    domain = models.CharField(max_length=16, choices=Domain.choices, default=Domain.MATH)
    answer_kind = models.CharField(
        max_length=16, choices=AnswerKind.choices, default=AnswerKind.NONE
    )
    reference_answer = models.CharField(max_length=500, blank=True)
    # Relative, as `training.answers.verify` takes it: 0.01 accepts answers within 1 %.
    tolerance = models.FloatField(
        null=True, blank=True, help_text="Relative tolerance: 0.01 accepts answers within 1 %."
    )
    unit = models.CharField(max_length=32, blank=True)
    choices = models.JSONField(default=list, blank=True)
    solution = models.TextField(blank=True)
    difficulty = models.PositiveSmallIntegerField(null=True, blank=True)
    tags = models.JSONField(default=list, blank=True)
    content_key = models.CharField(max_length=64, db_index=True)
    # Set when the verifier could not parse the reference answer at upload time.
    reference_error = models.CharField(max_length=300, blank=True)
    excluded_from_training = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["problem_set_id", "position", "id"]
        indexes = [models.Index(fields=["problem_set", "position"])]

    def __str__(self) -> str:
        return self.statement[:60]

    @property
    def has_verified_reference(self) -> bool:
        return (
            self.answer_kind != AnswerKind.NONE
            and bool(self.reference_answer)
            and not self.reference_error
        )

    @property
    def pool_status(self) -> str:
        """Why the problem is, or is not, ready for the training pool: "pool", "flagged" (the
        verifier cannot read its answer), "no_answer" or "excluded" (by its teacher). A ready
        problem is in the pool only while its set is approved for training."""
        if self.reference_error:
            return "flagged"
        if not self.has_verified_reference:
            return "no_answer"
        return "excluded" if self.excluded_from_training else "pool"

    @property
    def answer_display(self) -> str:
        """The reference answer as a teacher reads it: "B) 56", "12 N (± 1%)", "x^2+1"."""
        if self.answer_kind == AnswerKind.NONE or not self.reference_answer:
            return "—"
        if self.answer_kind == AnswerKind.CHOICE:
            index = ord(self.reference_answer[0].upper()) - ord("A")
            text = self.choices[index] if 0 <= index < len(self.choices or []) else ""
            return f"{self.reference_answer}) {text}".strip()
        shown = f"{self.reference_answer} {self.unit}".strip()
        if self.answer_kind == AnswerKind.NUMBER and self.tolerance:
            shown += f" (± {self.tolerance * 100:.3g}%)"
        return shown


class OnError(models.TextChoices):
    SKIP = "skip", "Skip bad items, import the rest"
    STOP = "stop", "Stop on the first error: import nothing until the file is fixed"


class UploadState(models.TextChoices):
    READING = "reading", "Being read"  # a big file waits for, or is in, the read task
    READY = "ready", "Ready to preview"
    REFUSED = "refused", "Refused"  # the read task refused the file (`read_error`)
    FAILED = "failed", "Could not be read"  # the read task crashed; the teacher may try again
    IMPORTING = "importing", "Being imported"  # a big preview waits for, or is in, the import task
    IMPORTED = "imported", "Imported"  # the import task is done; `import_result` says what it did


class ProblemUpload(models.Model):
    """A parsed upload, kept server-side between the preview and the teacher's confirmation.

    A small file is read during the upload request and staged `ready`. A bigger one is stored as
    it came (`raw_data`, with the teacher's choices) in state `reading` and read by the Celery task
    `problems.read_upload`, which saves `read_done`/`read_total` as it goes and drops the bytes
    once it has read them; `read_try` numbers the tries, so a task of an earlier try never writes
    over a later one. Importing a big preview works the same way: `importing`, the Celery task
    `problems.import_upload` with `import_try`, then `imported` (the items dropped, the outcome in
    `import_result` for the page to say) or back to `ready` with `import_error`.

    The items of the file are `ProblemUploadItem` rows (`staged_items`), one per item, so the
    preview reads one page of them, never the whole file. The counts (`ready_count`, ...) are
    kept here with the rows, in the same transactions. The upload (and its items) is deleted on
    import or discard, and uploads left unconfirmed expire after a day.
    """

    token = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="problem_uploads"
    )
    filename = models.CharField(max_length=255)
    source_format = models.CharField(max_length=16)
    encoding = models.CharField(max_length=32)
    title = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    # Import into this existing set instead of a new one.
    target_set = models.ForeignKey(
        ProblemSet, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    on_error = models.CharField(max_length=8, choices=OnError.choices, default=OnError.SKIP)
    file_warnings = models.JSONField(default=list)
    ready_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    duplicate_count = models.PositiveIntegerField(default=0)
    flagged_count = models.PositiveIntegerField(default=0)
    # Symbolic reference answers still waiting for the verifier (a background task checks them
    # when a file holds too many to check during the request); the import waits for zero.
    pending_checks = models.PositiveIntegerField(default=0)
    checks_total = models.PositiveIntegerField(default=0)
    # Reading a big file in the background (`problems.read_upload`).
    state = models.CharField(max_length=10, choices=UploadState.choices, default=UploadState.READY)
    raw_data = models.BinaryField(null=True, blank=True, editable=False)
    requested_format = models.CharField(max_length=8, default="auto")
    default_domain = models.CharField(max_length=16, choices=Domain.choices, default=Domain.MATH)
    read_try = models.PositiveIntegerField(default=0)
    read_done = models.PositiveIntegerField(default=0)
    read_total = models.PositiveIntegerField(default=0)  # 0 until the file is parsed
    read_progress_at = models.DateTimeField(null=True, blank=True)
    read_error = models.TextField(blank=True)
    read_error_details = models.JSONField(default=list, blank=True)
    # Importing a big preview in the background (`problems.import_upload`).
    import_try = models.PositiveIntegerField(default=0)
    import_started_at = models.DateTimeField(null=True, blank=True)
    import_error = models.TextField(blank=True)
    import_result = models.JSONField(default=dict, blank=True)
    imported_set = models.ForeignKey(
        ProblemSet, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "state"])]

    @property
    def item_count(self) -> int:
        return self.ready_count + self.error_count + self.duplicate_count

    @property
    def checks_done(self) -> int:
        return self.checks_total - self.pending_checks

    @property
    def read_has_failed(self) -> bool:
        """The read task crashed, or has said nothing for PROBLEM_UPLOAD_READ_TIMEOUT_SECONDS (its
        worker died): the teacher may try again."""
        if self.state == UploadState.FAILED:
            return True
        if self.state != UploadState.READING or self.read_progress_at is None:
            return False
        silent = (timezone.now() - self.read_progress_at).total_seconds()
        return silent > settings.PROBLEM_UPLOAD_READ_TIMEOUT_SECONDS

    @property
    def import_has_failed(self) -> bool:
        """The import task has not finished within PROBLEM_UPLOAD_IMPORT_TIMEOUT_SECONDS (its
        worker died): nothing was imported, and the teacher may import again."""
        if self.state != UploadState.IMPORTING or self.import_started_at is None:
            return False
        running = (timezone.now() - self.import_started_at).total_seconds()
        return running > settings.PROBLEM_UPLOAD_IMPORT_TIMEOUT_SECONDS


class ItemStatus(models.TextChoices):
    READY = "ready", "Ready"
    ERROR = "error", "Error"
    DUPLICATE = "duplicate", "Duplicate"


class ProblemUploadItem(models.Model):
    """One item of a staged upload, in file order (`position`, from 0).

    `data` holds the Problem field values (with `content_key`; `data["reference_pending"]` marks
    an answer the verifier has not read yet, `data["reference_error"]` one it cannot read);
    `errors` and `warnings` are [field, message] pairs; `duplicate_of` says where the same problem
    already is. Written once when the file is staged (the background answer check updates `data`
    and `warnings`), read a page at a time by the preview, and deleted with its upload.
    """

    upload = models.ForeignKey(ProblemUpload, on_delete=models.CASCADE, related_name="staged_items")
    position = models.PositiveIntegerField()
    number = models.PositiveIntegerField()  # 1-based, as the importers count
    line = models.PositiveIntegerField(null=True, blank=True)
    where = models.CharField(max_length=32)  # "Line 12" or "Item 3", as the teacher reads it
    status = models.CharField(max_length=10, choices=ItemStatus.choices)
    data = models.JSONField(default=dict)
    errors = models.JSONField(default=list)
    warnings = models.JSONField(default=list)
    duplicate_of = models.TextField(blank=True)

    class Meta:
        ordering = ["position"]  # file order, within an upload
        constraints = [
            models.UniqueConstraint(fields=["upload", "position"], name="upload_item_position")
        ]
        indexes = [
            models.Index(fields=["upload", "status", "position"], name="upload_item_status"),
        ]

    def __str__(self) -> str:
        return f"{self.where} ({self.status})"
