"""Writes for problem sets: upload → preview → import, single problems, sets, training exclusion.

An upload is read whole (`importers.read_problem_file`), checked for duplicates within the file and
against the teacher's stored problems, and staged as a `ProblemUpload` the teacher previews (one
`ProblemUploadItem` row per item, written with it in one transaction). A small
file is read during the upload request; a bigger one (over PROBLEM_UPLOAD_INLINE_MAX_LINES or
_BYTES) is stored and read by the same code in a Celery task (`problems.read_upload`), so no request
spends seconds reading 20,000 rows, while the preview shows how far it is. Only
`problem_upload_import` creates problems, in one transaction: either every importable item lands or
none does; for a preview of more than PROBLEM_IMPORT_INLINE_MAX_ITEMS ready items the Import click
runs it in the Celery task `problems.import_upload` (`problem_upload_import_start`/`_run`). A refused file (`UploadRefused`) stages nothing at all. When a file holds many symbolic
answers, the verifier reads them in a Celery task (`problems.check_upload_answers`) while the preview
shows progress; the import waits until it is done.

Publishing rules live here too: a teacher an admin has not approved cannot offer a practice set
(`ensure_may_publish`); only an admin makes a practice set public; an admin, or the set's teacher
when an admin trusts them for training, approves a set for the training pool. When a teacher who
is not trusted adds or changes problems of an approved set, the approval lapses (the admin
approved what they saw, not what came later). Each of these decisions is an audit row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from webapp.audit.models import AuditAction
from webapp.audit.services import audit_record
from webapp.core.after_commit import enqueue_on_commit
from webapp.core.errors import ServiceError
from webapp.core.roles import ensure_may_publish
from webapp.core.user_text import is_blank, normalise_user_text
from webapp.problems.content_key import problem_content_key
from webapp.problems.importers import (
    FORMAT_CHOICES,
    Issue,
    RawItem,
    ReadFile,
    UploadRefused,
    ValidatedItem,
    read_problem_file,
)
from webapp.problems.importers.decoding import check_upload_size
from webapp.problems.importers.validation import check_reference, validate_item
from webapp.problems.models import (
    Domain,
    ItemStatus,
    OnError,
    Problem,
    ProblemSet,
    ProblemUpload,
    ProblemUploadItem,
    UploadState,
)
from webapp.problems.selectors import existing_problems_by_key, problem_upload_items

if TYPE_CHECKING:
    from webapp.accounts.models import User

# A file may hold at most this many problems (10,000 is the benchmarked size).
MAX_ITEMS_PER_UPLOAD = 20_000
# Symbolic answers cost the verifier 10-30 ms each: this many are checked during the upload
# request (a few seconds at worst); more go to a background task while the preview shows progress.
INLINE_ANSWER_CHECKS = 150
# ...and for at most this long: each check may run to ANSWER_CHECK_TIMEOUT_SECONDS, so 150 answers
# that each ran out of time held the request for 150 s. Those left go to the background task too.
INLINE_ANSWER_CHECK_SECONDS = 5.0
# How often the background check saves its progress for the preview.
CHECK_PROGRESS_SECONDS = 2.0
# Staged items are written (bulk_create) and read back by the background check this many at a time.
ITEMS_PER_BATCH = 1000
UPLOAD_EXPIRES_AFTER = timedelta(days=1)
# Big files are read by a Celery task; a teacher may have this many being read at once.
MAX_FILES_READING_PER_TEACHER = 3
FORMAT_NAMES = {name for name, _ in FORMAT_CHOICES}
logger = logging.getLogger(__name__)
_PROBLEM_FIELDS = (
    "statement",
    "domain",
    "answer_kind",
    "reference_answer",
    "tolerance",
    "unit",
    "choices",
    "solution",
    "difficulty",
    "tags",
    "reference_error",
)


class ProblemInvalid(ServiceError):
    """A single problem's values are wrong; `issues` name the fields, for the form."""

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__(" ".join(issue.message for issue in issues), code="invalid_problem")
        self.issues = issues


@dataclass(frozen=True)
class ImportResult:
    problem_set: ProblemSet
    imported: int
    skipped_errors: int
    skipped_duplicates: int
    flagged: int  # imported, but the verifier cannot read their answers


# --- upload, preview, import ----------------------------------------------------------------


def problem_upload_receive(
    *,
    teacher: User,
    data: bytes,
    filename: str,
    format: str = "auto",
    default_domain: str = "math",
    on_error: str = OnError.SKIP,
    title: str = "",
    target_set: ProblemSet | None = None,
) -> ProblemUpload:
    """The upload request's half: a small file is read and staged at once (`ready`); a bigger one
    is stored as it came, with the teacher's choices, and read by the Celery task
    `problems.read_upload` (`problem_upload_read`) while the preview shows progress.

    The size limit is checked before anything else; raises UploadRefused for a refused file and
    ServiceError when the teacher already has MAX_FILES_READING_PER_TEACHER files being read.
    """
    check_upload_size(data, max_bytes=settings.PROBLEM_UPLOAD_MAX_BYTES)
    _ensure_target(target_set, teacher)
    # The file's name and the typed title are shown on the preview and become the set's title:
    # without direction controls, like every user text (webapp.core.user_text).
    filename, title = normalise_user_text(filename), _typed_title(title)
    options = {
        "filename": filename,
        "format": format,
        "default_domain": default_domain,
        "on_error": on_error,
        "title": title,
        "target_set": target_set,
    }
    if _read_inline(data):
        return problem_upload_preview(teacher=teacher, data=data, **options)
    with transaction.atomic():
        # One teacher's uploads at a time, so two at once cannot both pass the limit.
        get_user_model().objects.select_for_update().filter(pk=teacher.pk).first()
        reading = _uploads_being_read(teacher).count()
        if reading >= MAX_FILES_READING_PER_TEACHER:
            raise ServiceError(
                f"You already have {reading} files being read. Wait until one of their previews "
                "appears (its page shows how far it is), then upload this file again.",
                code="too_many_reading",
                status=429,
            )
        _expire_old_uploads()
        ProblemUpload.objects.filter(owner=teacher, state=UploadState.REFUSED).delete()
        staged = ProblemUpload.objects.create(
            owner=teacher,
            filename=filename[:255],
            title=title[:200],
            target_set=target_set,
            on_error=on_error if on_error in OnError.values else OnError.SKIP,
            state=UploadState.READING,
            raw_data=data,
            requested_format=format if format in FORMAT_NAMES else "auto",
            default_domain=default_domain if default_domain in Domain.values else Domain.MATH,
            read_try=1,
            read_progress_at=timezone.now(),
        )
        enqueue_on_commit("problems.read_upload", staged.pk, staged.read_try)
    return staged


def problem_upload_preview(
    *,
    teacher: User,
    data: bytes,
    filename: str,
    format: str = "auto",
    default_domain: str = "math",
    on_error: str = OnError.SKIP,
    title: str = "",
    target_set: ProblemSet | None = None,
) -> ProblemUpload:
    """Read a file now and stage it for the teacher's preview; raises UploadRefused for a bad
    file. The upload request calls it (through `problem_upload_receive`) only for small files."""
    _ensure_target(target_set, teacher)
    filename, title = normalise_user_text(filename), _typed_title(title)
    read, items = _read_and_stage(
        data, teacher=teacher, filename=filename, format=format, default_domain=default_domain
    )
    _expire_old_uploads()
    with transaction.atomic():
        staged = ProblemUpload.objects.create(
            owner=teacher,
            target_set=target_set,
            **_staged_fields(read, items, filename=filename, title=title, on_error=on_error),
        )
        _save_staged_items(staged.pk, items)
        if read.pending_checks:
            enqueue_on_commit("problems.check_upload_answers", staged.pk)
    return staged


class _ReadSuperseded(Exception):
    """The upload was discarded, or a newer try took over, while this task was reading it."""


def problem_upload_read(*, upload_id: int, attempt: int) -> str:
    """The background half of a big upload (the task `problems.read_upload`): read the stored
    bytes exactly as a small file is read in the request, saving progress every PROGRESS_EVERY
    items, and stage the preview (`ready`, the bytes dropped). A file the reader refuses becomes
    `refused` (the message is kept for the upload page); an unexpected error `failed`, keeping the
    bytes for another try. Every write is conditional on the try number, so the task of an older
    try stops instead of overwriting a newer one. Returns the state it left (or why it stopped).
    """
    mine = ProblemUpload.objects.filter(pk=upload_id, state=UploadState.READING, read_try=attempt)
    staged = mine.select_related("owner").first()
    if staged is None or staged.raw_data is None:
        return "superseded"

    def progress(done: int, total: int) -> None:
        saved = mine.update(read_done=done, read_total=total, read_progress_at=timezone.now())
        if not saved:
            raise _ReadSuperseded

    try:
        read, items = _read_and_stage(
            bytes(staged.raw_data),
            teacher=staged.owner,
            filename=staged.filename,
            format=staged.requested_format,
            default_domain=staged.default_domain,
            progress=progress,
        )
    except _ReadSuperseded:
        return "superseded"
    except UploadRefused as exc:
        mine.update(
            state=UploadState.REFUSED,
            read_error=exc.message,
            read_error_details=exc.details,
            raw_data=None,
            read_progress_at=timezone.now(),
        )
        return UploadState.REFUSED
    except Exception:
        logger.exception("could not read upload %s (try %s)", upload_id, attempt)
        mine.update(
            state=UploadState.FAILED,
            read_error="The reader stopped with an unexpected error.",
            read_progress_at=timezone.now(),
        )
        return UploadState.FAILED
    fields = _staged_fields(
        read, items, filename=staged.filename, title=staged.title, on_error=staged.on_error
    )
    with transaction.atomic():
        saved = mine.update(
            **fields,
            state=UploadState.READY,
            raw_data=None,
            read_done=len(items),
            read_total=len(items),
            read_progress_at=timezone.now(),
        )
        if saved:  # still this try: its items are written with the state, or not at all
            _save_staged_items(upload_id, items)
            if read.pending_checks:
                enqueue_on_commit("problems.check_upload_answers", upload_id)
    return UploadState.READY if saved else "superseded"


def problem_upload_retry(*, upload: ProblemUpload, teacher: User) -> ProblemUpload:
    """Read a file again whose read failed or went silent: a new try, a new task."""
    if upload.owner_id != teacher.pk:
        raise ServiceError("That upload does not exist.", code="not_found", status=404)
    with transaction.atomic():
        locked = ProblemUpload.objects.select_for_update().defer("raw_data").get(pk=upload.pk)
        if not locked.read_has_failed:
            raise ServiceError(
                "This file is not waiting for another try: its page shows where it is.",
                code="not_failed",
            )
        if not ProblemUpload.objects.filter(pk=locked.pk, raw_data__isnull=False).exists():
            raise ServiceError(
                "This file is no longer stored: upload it again.", code="gone", status=410
            )
        locked.read_try += 1
        locked.state = UploadState.READING
        locked.read_done = locked.read_total = 0
        locked.read_progress_at = timezone.now()
        locked.read_error = ""
        locked.save(
            update_fields=[
                "read_try",
                "state",
                "read_done",
                "read_total",
                "read_progress_at",
                "read_error",
            ]
        )
        enqueue_on_commit("problems.read_upload", locked.pk, locked.read_try)
    return locked


def _read_inline(data: bytes) -> bool:
    """Small enough to read during the request (counting lines is one pass in C)."""
    lines = data.count(b"\n") + (0 if data.endswith((b"\n", b"\n\x00")) else 1)
    return (
        len(data) <= settings.PROBLEM_UPLOAD_INLINE_MAX_BYTES
        and lines <= settings.PROBLEM_UPLOAD_INLINE_MAX_LINES
    )


def _uploads_being_read(teacher: User):
    silent_since = timezone.now() - timedelta(seconds=settings.PROBLEM_UPLOAD_READ_TIMEOUT_SECONDS)
    return ProblemUpload.objects.filter(
        owner=teacher, state=UploadState.READING, read_progress_at__gte=silent_since
    )


def _ensure_target(target_set: ProblemSet | None, teacher: User) -> None:
    if target_set is not None and target_set.owner_id != teacher.pk:
        raise ServiceError("That problem set does not exist.", code="not_found", status=404)


def _expire_old_uploads() -> None:
    ProblemUpload.objects.filter(created_at__lt=timezone.now() - UPLOAD_EXPIRES_AFTER).delete()


def _read_and_stage(
    data: bytes,
    *,
    teacher: User,
    filename: str,
    format: str,
    default_domain: str,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[ReadFile, list[ProblemUploadItem]]:
    """The one way a file is read, in the request or in the task: parse and check it, then mark
    duplicates against the teacher's stored problems."""
    read = read_problem_file(
        data,
        filename=filename,
        format=format,
        default_domain=default_domain,
        max_bytes=settings.PROBLEM_UPLOAD_MAX_BYTES,
        max_items=MAX_ITEMS_PER_UPLOAD,
        max_slow_checks=INLINE_ANSWER_CHECKS,
        slow_checks_budget_s=INLINE_ANSWER_CHECK_SECONDS,
        progress=progress,
    )
    return read, _stage_items(read.items, teacher=teacher)


def _staged_fields(
    read: ReadFile, items: list[ProblemUploadItem], *, filename: str, title: str, on_error: str
) -> dict:
    """The ProblemUpload values of a file that was read (its items are saved beside it,
    `_save_staged_items`)."""
    counts = {status: 0 for status in ItemStatus.values}
    for item in items:
        counts[item.status] += 1
    return {
        "filename": filename[:255],
        "source_format": read.format,
        "encoding": read.encoding,
        "title": (title or read.title or _title_from_filename(filename))[:200],
        "description": read.description,
        "on_error": on_error if on_error in OnError.values else OnError.SKIP,
        "file_warnings": read.file_warnings,
        "ready_count": counts["ready"],
        "error_count": counts["error"],
        "duplicate_count": counts["duplicate"],
        "flagged_count": sum(
            1 for item in items if item.status == ItemStatus.READY and item.data["reference_error"]
        ),
        "pending_checks": read.pending_checks,
        "checks_total": read.pending_checks,
    }


def _save_staged_items(upload_id: int, items: list[ProblemUploadItem]) -> None:
    """Write a file's items as rows of its upload, in batches; call inside the transaction that
    creates the upload or marks it read, so the rows and the counts land together."""
    for item in items:
        item.upload_id = upload_id
    ProblemUploadItem.objects.bulk_create(items, batch_size=ITEMS_PER_BATCH)


def problem_upload_check_answers(*, upload_id: int) -> int:
    """Let the verifier read every pending reference answer of a staged upload (the background
    half of the preview), in file order; saves the checked items and the progress every few
    seconds, in one transaction each time. Returns how many it checked.

    Stops quietly if the teacher imported or discarded the upload meanwhile.
    """
    staged = ProblemUpload.objects.defer("raw_data").filter(pk=upload_id).first()
    if staged is None:
        return 0
    pending_ids = list(
        problem_upload_items(upload=staged)
        .filter(data__reference_pending=True)
        .values_list("pk", flat=True)
    )
    checked: list[ProblemUploadItem] = []
    last_save = time.monotonic()
    done = 0
    for start in range(0, len(pending_ids), ITEMS_PER_BATCH):
        chunk = pending_ids[start : start + ITEMS_PER_BATCH]
        for item in ProblemUploadItem.objects.filter(pk__in=chunk).order_by("position"):
            warning = check_reference(item.data, wait="background")
            if warning:
                item.warnings.append([warning.field, warning.message])
            checked.append(item)
            done += 1
            finished = done == len(pending_ids)
            if finished or time.monotonic() - last_save > CHECK_PROGRESS_SECONDS:
                if not _save_checked(staged, checked, pending=len(pending_ids) - done):
                    return done
                checked = []
                last_save = time.monotonic()
    return done


def _save_checked(staged: ProblemUpload, checked: list[ProblemUploadItem], *, pending: int) -> bool:
    """Save checked items with the upload's progress and flagged count, together; False when the
    upload is gone (imported or discarded). The rows are written before the upload, the order a
    discard deletes them in."""
    with transaction.atomic():
        ProblemUploadItem.objects.bulk_update(
            checked, ["data", "warnings"], batch_size=ITEMS_PER_BATCH
        )
        flagged = problem_upload_items(upload=staged, show="flagged").count()
        return bool(
            ProblemUpload.objects.filter(pk=staged.pk).update(
                pending_checks=pending, flagged_count=flagged
            )
        )


def _stage_items(validated: list[ValidatedItem], *, teacher) -> list[ProblemUploadItem]:
    """The file's items as unsaved rows in file order, each ready, an error or a duplicate (of an
    earlier item of the file or of one of the teacher's stored problems)."""
    keys = [problem_content_key(item.data.get("statement", "")) for item in validated]
    stored = existing_problems_by_key(teacher=teacher, keys=[k for k in keys if k])
    first_seen: dict[str, str] = {}
    staged = []
    for position, (item, key) in enumerate(zip(validated, keys, strict=True)):
        entry = ProblemUploadItem(
            position=position,
            number=item.number,
            line=item.line,
            where=item.where,
            status=ItemStatus.READY,
            data=item.data | {"content_key": key},
            errors=[[issue.field, issue.message] for issue in item.errors],
            warnings=[[issue.field, issue.message] for issue in item.warnings],
            duplicate_of="",
        )
        if item.errors:
            entry.status = ItemStatus.ERROR
        elif key in first_seen:
            entry.status = ItemStatus.DUPLICATE
            entry.duplicate_of = f"the same problem at {first_seen[key].lower()} of this file"
        elif key in stored:
            entry.status = ItemStatus.DUPLICATE
            entry.duplicate_of = f"your set “{stored[key]}”"
        if entry.status != ItemStatus.ERROR:
            first_seen.setdefault(key, item.where)
        staged.append(entry)
    return staged


def problem_upload_import_start(
    *, upload: ProblemUpload, teacher: User, on_error: str, title: str = ""
) -> ImportResult | None:
    """The Import click. A preview of at most PROBLEM_IMPORT_INLINE_MAX_ITEMS ready items is
    imported at once (its ImportResult); a bigger one is checked the same way, marked `importing`
    and left to the Celery task `problems.import_upload` (None: the preview shows progress).
    A second click while it is imported changes nothing."""
    if upload.ready_count <= settings.PROBLEM_IMPORT_INLINE_MAX_ITEMS:
        return problem_upload_import(upload=upload, teacher=teacher, on_error=on_error, title=title)
    _ensure_importable(upload, teacher=teacher, on_error=on_error)
    with transaction.atomic():
        locked = ProblemUpload.objects.select_for_update().defer("raw_data").get(pk=upload.pk)
        _ensure_importable(locked, teacher=teacher, on_error=on_error)
        locked.state = UploadState.IMPORTING
        locked.import_try += 1
        locked.import_started_at = timezone.now()
        locked.import_error = ""
        locked.on_error = on_error
        locked.title = (_typed_title(title) or locked.title)[:200]
        locked.save(
            update_fields=[
                "state",
                "import_try",
                "import_started_at",
                "import_error",
                "on_error",
                "title",
            ]
        )
        enqueue_on_commit("problems.import_upload", locked.pk, locked.import_try)
    return None


class _ImportSuperseded(Exception):
    """The upload was imported by a newer try, or discarded, while this task was importing it."""


def problem_upload_import_run(*, upload_id: int, attempt: int) -> str:
    """The background half of importing a big preview (the task `problems.import_upload`): the
    same `problem_upload_import` as in the request, in one transaction that ends by marking the
    upload `imported` with what it did, only if it is still this try (else it rolls back). A
    refusal or an error leaves the preview as it was (`ready`) with `import_error` to show.
    Returns the state it left (or why it stopped)."""
    mine = ProblemUpload.objects.filter(
        pk=upload_id, state=UploadState.IMPORTING, import_try=attempt
    )
    upload = mine.defer("raw_data").select_related("owner", "target_set").first()
    if upload is None:
        return "superseded"
    try:
        problem_upload_import(
            upload=upload,
            teacher=upload.owner,
            on_error=upload.on_error,
            title=upload.title,
            attempt=attempt,
        )
    except _ImportSuperseded:
        return "superseded"
    except ServiceError as exc:
        message, outcome = exc.message, "refused"
    except Exception:
        logger.exception("could not import upload %s (try %s)", upload_id, attempt)
        message, outcome = "The import stopped with an unexpected error.", "failed"
    else:
        return UploadState.IMPORTED
    mine.update(state=UploadState.READY, import_error=message)
    return outcome


def problem_upload_import_result(*, upload: ProblemUpload, teacher: User) -> ImportResult | None:
    """What the import task did, once, for the page to say (the upload is then forgotten);
    None when the set it imported into was deleted since."""
    if upload.owner_id != teacher.pk or upload.state != UploadState.IMPORTED:
        raise ServiceError("That upload does not exist.", code="not_found", status=404)
    problem_set = upload.imported_set
    upload.delete()
    if problem_set is None:
        return None
    return ImportResult(problem_set=problem_set, **upload.import_result)


def _ensure_importable(
    upload: ProblemUpload, *, teacher: User, on_error: str, attempt: int | None = None
) -> None:
    """The checks of an import, the same in the request and in the task."""
    if upload.owner_id != teacher.pk:
        raise ServiceError("That upload does not exist.", code="not_found", status=404)
    if upload.state == UploadState.IMPORTING:
        if attempt is None and not upload.import_has_failed:
            raise ServiceError(
                "This file is already being imported: the page shows when it is done.",
                code="importing",
            )
    elif upload.state == UploadState.IMPORTED:
        raise ServiceError("This file was already imported.", code="imported")
    elif upload.state != UploadState.READY:
        raise ServiceError(
            "This file is still being read: import it once its preview appears.",
            code="reading",
        )
    if upload.pending_checks:
        raise ServiceError(
            f"The answer checker is still reading {upload.pending_checks} answer(s); import "
            "when it has finished (the preview updates by itself).",
            code="checking",
        )
    if on_error not in OnError.values:
        raise ServiceError("Choose whether to skip bad items or stop.", code="bad_choice")
    if on_error == OnError.STOP and upload.error_count:
        raise ServiceError(
            f"{upload.error_count} item(s) have errors, and you chose to stop on the first error: "
            "nothing was imported. Fix the file and upload it again, or choose to skip bad items.",
            code="has_errors",
        )


def problem_upload_import(
    *,
    upload: ProblemUpload,
    teacher: User,
    on_error: str,
    title: str = "",
    attempt: int | None = None,
) -> ImportResult:
    """Create the previewed problems, all in one transaction, and delete the staged upload (or,
    for the import task's try `attempt`, mark it `imported` with the result).

    "stop" refuses the whole import while any item has an error; "skip" imports the rest.
    Duplicates are checked again, in case another import landed since the preview.
    """
    _ensure_importable(upload, teacher=teacher, on_error=on_error, attempt=attempt)
    ready: list[dict] = list(
        problem_upload_items(upload=upload)
        .filter(status=ItemStatus.READY)
        .values_list("data", flat=True)
        .iterator(chunk_size=ITEMS_PER_BATCH)
    )
    stored = existing_problems_by_key(teacher=teacher, keys=[data["content_key"] for data in ready])
    now_duplicate = [data for data in ready if data["content_key"] in stored]
    ready = [data for data in ready if data["content_key"] not in stored]
    if not ready:
        raise ServiceError(
            "There is nothing left to import: every item has an error or is a duplicate.",
            code="empty",
        )

    with transaction.atomic():
        problem_set = upload.target_set
        if problem_set is None:
            problem_set = ProblemSet.objects.create(
                owner=teacher,
                title=(_typed_title(title) or upload.title or "Untitled set")[:200],
                description=upload.description,
                source_format=upload.source_format,
                source_filename=upload.filename,
            )
        else:
            problem_set = ProblemSet.objects.select_for_update().get(
                pk=problem_set.pk, owner=teacher
            )
            _training_approval_lapse(problem_set, teacher=teacher, why="problems imported")
        start = _next_position(problem_set)
        Problem.objects.bulk_create(
            (
                Problem(
                    problem_set=problem_set,
                    created_by=teacher,
                    position=start + index,
                    content_key=data["content_key"],
                    **{name: data[name] for name in _PROBLEM_FIELDS},
                )
                for index, data in enumerate(ready)
            ),
            batch_size=1000,
        )
        result = ImportResult(
            problem_set=problem_set,
            imported=len(ready),
            skipped_errors=upload.error_count,
            skipped_duplicates=upload.duplicate_count + len(now_duplicate),
            flagged=sum(1 for data in ready if data["reference_error"]),
        )
        if attempt is None:
            upload.delete()
        else:
            # The items go first, as a discard deletes them (then the upload row).
            problem_upload_items(upload=upload).delete()
            marked = ProblemUpload.objects.filter(
                pk=upload.pk, state=UploadState.IMPORTING, import_try=attempt
            ).update(
                state=UploadState.IMPORTED,
                imported_set=problem_set,
                import_result={
                    "imported": result.imported,
                    "skipped_errors": result.skipped_errors,
                    "skipped_duplicates": result.skipped_duplicates,
                    "flagged": result.flagged,
                },
            )
            if not marked:
                raise _ImportSuperseded  # rolls the whole import back
    return result


def problem_upload_discard(*, upload: ProblemUpload, teacher: User) -> None:
    if upload.owner_id != teacher.pk:
        raise ServiceError("That upload does not exist.", code="not_found", status=404)
    if upload.state == UploadState.IMPORTING and not upload.import_has_failed:
        raise ServiceError(
            "This file is being imported: it cannot be discarded now. The page shows when the "
            "import is done.",
            code="importing",
        )
    upload.delete()


def _next_position(problem_set: ProblemSet) -> int:
    last = problem_set.problems.aggregate(last=Max("position"))["last"]
    return 0 if last is None else last + 1


def _typed_title(title: str) -> str:
    """A title the teacher typed on the upload or preview page, as stored (webapp.core.user_text);
    "" when it shows nothing, so the file's own title or name is used instead."""
    title = normalise_user_text(title)
    return "" if is_blank(title) else title


def _set_title(title: str) -> str:
    """A title typed on the set's own form, as stored; refused when it shows nothing."""
    title = _typed_title(title)
    if not title:
        raise ServiceError("Give the set a title.", code="empty_title")
    return title[:200]


def _title_from_filename(filename: str) -> str:
    stem = filename.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return stem.replace("_", " ").replace("-", " ").strip().capitalize() or "Untitled set"


# --- sets ----------------------------------------------------------------------------------


def problem_set_create(
    *, teacher: User, title: str, description: str = "", is_practice: bool = False
) -> ProblemSet:
    if is_practice:
        ensure_may_publish(teacher)
    return ProblemSet.objects.create(
        owner=teacher,
        title=_set_title(title),
        description=normalise_user_text(description),
        is_practice=is_practice,
    )


def problem_set_update(
    *, problem_set: ProblemSet, teacher: User, title: str, description: str, is_practice: bool
) -> ProblemSet:
    _ensure_owner(problem_set, teacher)
    if is_practice and not problem_set.is_practice:
        ensure_may_publish(teacher)
    problem_set.title = _set_title(title)
    problem_set.description = normalise_user_text(description)
    problem_set.is_practice = is_practice
    problem_set.save(update_fields=["title", "description", "is_practice"])
    return problem_set


def problem_set_delete(*, problem_set: ProblemSet, teacher: User) -> None:
    """Delete the set with its problems, assignments and students' attempts on them."""
    _ensure_owner(problem_set, teacher)
    problem_set.delete()


def _ensure_owner(problem_set: ProblemSet, teacher) -> None:
    if problem_set.owner_id != teacher.pk:
        raise ServiceError("That problem set does not exist.", code="not_found", status=404)


@transaction.atomic
def problem_set_visibility_update(
    *, problem_set: ProblemSet, actor: User, public: bool
) -> ProblemSet:
    """An admin lists a practice set for every student (public), or only for the students of its
    teacher's classes again."""
    if not getattr(actor, "is_site_admin", False):
        raise ServiceError("Only site admins make sets public.", code="forbidden", status=403)
    problem_set = ProblemSet.objects.select_for_update().get(pk=problem_set.pk)
    if public and not problem_set.is_practice:
        raise ServiceError(
            f"“{problem_set.title}” is not a practice set: its teacher offers it as practice "
            "first, then it can be made public.",
            code="not_practice",
        )
    if problem_set.is_public == public:
        return problem_set
    problem_set.is_public = public
    problem_set.made_public_by = actor if public else None
    problem_set.made_public_at = timezone.now() if public else None
    problem_set.save(update_fields=["is_public", "made_public_by", "made_public_at"])
    audit_record(
        action=AuditAction.SET_MADE_PUBLIC if public else AuditAction.SET_MADE_PRIVATE,
        actor=actor,
        target=problem_set,
        details={"owner": problem_set.owner.username},
    )
    return problem_set


@transaction.atomic
def problem_set_training_approval_update(
    *, problem_set: ProblemSet, actor: User, approved: bool
) -> ProblemSet:
    """Let the set's problems into the training pool, or take them out. An admin may do this for
    any set; a teacher only for their own sets, and only when an admin trusts them for training."""
    problem_set = (
        ProblemSet.objects.select_for_update().select_related("owner").get(pk=problem_set.pk)
    )
    is_admin = getattr(actor, "is_site_admin", False)
    if not is_admin:
        _ensure_owner(problem_set, actor)
        if not actor.may_approve_own_sets_for_training:
            raise ServiceError(
                "An admin approves this set for training (your account is not trusted to "
                "approve its own sets).",
                code="not_trusted",
                status=403,
            )
    if problem_set.is_training_approved == approved:
        return problem_set
    problem_set.training_approved_by = actor if approved else None
    problem_set.training_approved_at = timezone.now() if approved else None
    problem_set.save(update_fields=["training_approved_by", "training_approved_at"])
    audit_record(
        action=AuditAction.SET_TRAINING_APPROVED
        if approved
        else AuditAction.SET_TRAINING_WITHDRAWN,
        actor=actor,
        target=problem_set,
        details={
            "owner": problem_set.owner.username,
            "problems": problem_set.problems.count(),
        },
    )
    return problem_set


def _training_approval_lapse(problem_set: ProblemSet, *, teacher, why: str) -> None:
    """Take an approved set out of the pool when someone not trusted to approve it changes its
    problems; call inside the transaction that changes them, with the set locked."""
    if not problem_set.is_training_approved or teacher.may_approve_own_sets_for_training:
        return
    approved_by = problem_set.training_approved_by
    problem_set.training_approved_by = None
    problem_set.training_approved_at = None
    problem_set.save(update_fields=["training_approved_by", "training_approved_at"])
    audit_record(
        action=AuditAction.SET_TRAINING_WITHDRAWN,
        actor=teacher,
        target=problem_set,
        details={
            "reason": f"{why} after approval; an admin approves the set again",
            "approved_by": approved_by.username if approved_by else "",
        },
    )


# --- single problems -------------------------------------------------------------------------


def problem_create(*, problem_set: ProblemSet, teacher: User, fields: dict) -> Problem:
    """Add one problem typed into the form; `fields` uses the upload field names."""
    _ensure_owner(problem_set, teacher)
    values = _checked_values(fields, teacher=teacher, exclude_id=None)
    with transaction.atomic():
        locked = ProblemSet.objects.select_for_update().get(pk=problem_set.pk)
        _training_approval_lapse(locked, teacher=teacher, why="a problem added")
        return Problem.objects.create(
            problem_set=locked,
            created_by=teacher,
            position=_next_position(locked),
            **values,
        )


def problem_update(*, problem: Problem, teacher: User, fields: dict) -> Problem:
    if problem.problem_set is None or problem.problem_set.owner_id != teacher.pk:
        raise ServiceError("That problem does not exist.", code="not_found", status=404)
    values = _checked_values(fields, teacher=teacher, exclude_id=problem.pk)
    with transaction.atomic():
        locked = ProblemSet.objects.select_for_update().get(pk=problem.problem_set_id)
        _training_approval_lapse(locked, teacher=teacher, why="a problem edited")
        for name, value in values.items():
            setattr(problem, name, value)
        problem.save(update_fields=list(values))
    problem.problem_set = locked
    return problem


def problem_delete(*, problem: Problem, teacher: User) -> None:
    if problem.problem_set is None or problem.problem_set.owner_id != teacher.pk:
        raise ServiceError("That problem does not exist.", code="not_found", status=404)
    problem.delete()


def problem_training_exclusion_update(
    *, problem: Problem, teacher: User, excluded: bool
) -> Problem:
    """Keep a problem out of (or let it back into) the pool fine-tuning draws from."""
    if problem.problem_set is None or problem.problem_set.owner_id != teacher.pk:
        raise ServiceError("That problem does not exist.", code="not_found", status=404)
    problem.excluded_from_training = excluded
    problem.save(update_fields=["excluded_from_training"])
    return problem


def _checked_values(fields: dict, *, teacher, exclude_id: int | None) -> dict:
    item = validate_item(RawItem(number=1, line=None, fields=fields), default_domain="math")
    if item.hostile or item.errors:
        raise ProblemInvalid(item.hostile + item.errors)
    values = {name: item.data[name] for name in _PROBLEM_FIELDS}
    values["content_key"] = problem_content_key(values["statement"])
    clash = Problem.objects.filter(problem_set__owner=teacher, content_key=values["content_key"])
    if exclude_id is not None:
        clash = clash.exclude(pk=exclude_id)
    clash = clash.select_related("problem_set").first()
    if clash is not None:
        raise ProblemInvalid(
            [Issue("statement", f"You already have this problem in “{clash.problem_set.title}”.")]
        )
    return values
