"""Reads for problem sets: a teacher's own sets and problems, the upload preview, the training pool.

Every teacher-facing read takes the teacher and filters by owner, so another teacher's set is
"not found" rather than forbidden (its existence is not their business). `training_pool_problems`
is the one definition of the pool fine-tuning draws from: ready problems (`in_pool_q`) of sets
approved for training. The admin's set review reads every teacher's sets (`set_review_*`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from django.db.models import Count, Q, QuerySet
from django.db.models.fields.json import KT

from webapp.core.errors import ServiceError
from webapp.problems.models import (
    AnswerKind,
    ItemStatus,
    Problem,
    ProblemSet,
    ProblemUpload,
    ProblemUploadItem,
    UploadState,
)
from webapp.tutoring.models import Attempt

if TYPE_CHECKING:
    from webapp.accounts.models import User


def in_pool_q(prefix: str = "") -> Q:
    """A problem ready for the training pool, as a query (`Problem.has_verified_reference`, not
    excluded); `prefix` ("problems__") applies it across a relation. The pool itself also needs the
    problem's set approved for training (`training_pool_queryset`)."""
    return (
        ~Q(**{f"{prefix}answer_kind": AnswerKind.NONE})
        & ~Q(**{f"{prefix}reference_answer": ""})
        & Q(**{f"{prefix}reference_error": "", f"{prefix}excluded_from_training": False})
    )


# The filters of a set's problem list: key → (label, condition).
PROBLEM_FILTERS = {
    "all": ("All problems", Q()),
    "pool": ("Ready for training", in_pool_q()),
    "flagged": ("Answer not checkable", ~Q(reference_error="")),
    "no_answer": ("No reference answer", Q(answer_kind=AnswerKind.NONE) | Q(reference_answer="")),
    "excluded": ("Excluded from training", Q(excluded_from_training=True)),
}


def _not_found(what: str) -> ServiceError:
    return ServiceError(f"That {what} does not exist.", code="not_found", status=404)


def problem_set_list(*, teacher: User) -> QuerySet[ProblemSet]:
    """The teacher's sets, newest first, with `problem_count`, `pool_count` and `class_count`."""
    return (
        ProblemSet.objects.filter(owner=teacher)
        .annotate(
            problem_count=Count("problems", distinct=True),
            pool_count=Count("problems", filter=in_pool_q("problems__"), distinct=True),
            class_count=Count("assignments", distinct=True),
        )
        .order_by("-created_at", "-id")
    )


def problem_set_get(*, teacher: User, problem_set_id: int) -> ProblemSet:
    problem_set = ProblemSet.objects.filter(owner=teacher, pk=problem_set_id).first()
    if problem_set is None:
        raise _not_found("problem set")
    return problem_set


def problem_set_summary(*, problem_set: ProblemSet) -> dict[str, int]:
    """Counts for the set's header: total, in_pool, flagged, no_answer, excluded (one query)."""
    return problem_set.problems.aggregate(
        total=Count("id"),
        **{
            name: Count("id", filter=condition)
            for name, (_, condition) in PROBLEM_FILTERS.items()
            if name != "all"
        },
    )


def problem_list(
    *, problem_set: ProblemSet, show: str = "all", query: str = ""
) -> QuerySet[Problem]:
    """The set's problems in order; `show` is a key of PROBLEM_FILTERS, `query` searches statements."""
    _, condition = PROBLEM_FILTERS.get(show, PROBLEM_FILTERS["all"])
    problems = problem_set.problems.filter(condition)
    if query.strip():
        problems = problems.filter(statement__icontains=query.strip())
    return problems.order_by("position", "id")


def problem_set_delete_consequences(*, problem_set: ProblemSet) -> list[str]:
    """What else goes when the set is deleted, for the confirmation page."""
    problems = problem_set.problems.count()
    attempts = Attempt.objects.filter(problem__problem_set=problem_set).count()
    classes = problem_set.assignments.count()
    lines = [f"its {problems} problem(s)"]
    if classes:
        lines.append(f"its assignment to {classes} class(es)")
    if attempts:
        lines.append(f"{attempts} attempt(s) students made on its problems, with their answers")
    return lines


def problem_delete_consequences(*, problem: Problem) -> list[str]:
    attempts = problem.attempts.count()
    return [f"{attempts} attempt(s) students made on it, with their answers"] if attempts else []


def problem_get(*, teacher: User, problem_id: int) -> Problem:
    problem = (
        Problem.objects.select_related("problem_set")
        .filter(pk=problem_id, problem_set__owner=teacher)
        .first()
    )
    if problem is None:
        raise _not_found("problem")
    return problem


# What a status poll never reads: the texts only the preview or the upload page show.
_NOT_POLLED = ("description", "file_warnings", "read_error_details", "import_result")


def problem_upload_get(*, teacher: User, token: str, for_poll: bool = False) -> ProblemUpload:
    """The teacher's staged upload, without the stored bytes of a file still to be read (and,
    for a status poll, without the texts it does not show). Its items are rows of their own
    (`problem_upload_items`), read only by what shows or uses them: a poll or an Import click of
    a big preview loads none."""
    uploads = ProblemUpload.objects.filter(owner=teacher, token=token).defer("raw_data")
    if for_poll:
        uploads = uploads.defer(*_NOT_POLLED)
    upload = uploads.first()
    if upload is None:
        raise ServiceError(
            "That upload is no longer waiting: it was imported, discarded or expired. "
            "Upload the file again.",
            code="not_found",
            status=404,
        )
    return upload


def problem_upload_refused(*, teacher: User, token: uuid.UUID) -> ProblemUpload | None:
    """The teacher's upload that the background reader refused, for the upload page to explain."""
    return (
        ProblemUpload.objects.filter(owner=teacher, token=token, state=UploadState.REFUSED)
        .defer("raw_data")
        .first()
    )


# The tabs of the upload preview → the upload's count of their items (the counts are written with
# the rows, so the preview pages through a tab without counting it).
UPLOAD_ITEM_COUNTS = {
    "all": "item_count",
    "error": "error_count",
    "duplicate": "duplicate_count",
    "flagged": "flagged_count",
}


def problem_upload_items(
    *, upload: ProblemUpload, show: str = "all"
) -> QuerySet[ProblemUploadItem]:
    """A staged upload's items in file order; `show` (a key of UPLOAD_ITEM_COUNTS) keeps the
    errors, the duplicates, or the ready items whose answer the verifier cannot read ("flagged",
    a non-empty `data["reference_error"]`). A queryset, so the preview fetches one page of it
    (the (upload, status, position) index serves the tabs)."""
    items = ProblemUploadItem.objects.filter(upload=upload)
    if show in (ItemStatus.ERROR, ItemStatus.DUPLICATE):
        items = items.filter(status=show)
    elif show == "flagged":
        items = items.alias(reference_error=KT("data__reference_error")).filter(
            status=ItemStatus.READY, reference_error__gt=""
        )
    return items.order_by("position")


def problem_upload_item_count(*, upload: ProblemUpload, show: str = "all") -> int:
    """How many items `problem_upload_items(upload=upload, show=show)` holds, from the upload's
    counts (no query)."""
    return getattr(upload, UPLOAD_ITEM_COUNTS[show])


def problem_upload_report_rows(*, upload: ProblemUpload) -> Iterator[list[object]]:
    """The rows of a staged upload's report (where, kind, field, message, statement), in file
    order, item after item: its errors, "duplicate", its warnings. The items are streamed from the
    database (only the fields the report shows, the statement cut out of `data` there), never
    held all at once."""
    items = (
        problem_upload_items(upload=upload)
        .annotate(statement=KT("data__statement"))
        .values_list("where", "status", "errors", "warnings", "duplicate_of", "statement")
        .iterator(chunk_size=2000)
    )
    for where, status, errors, warnings, duplicate_of, statement in items:
        statement = (statement or "")[:200]
        for field, message in errors:
            yield [where, "error", field, message, statement]
        if status == ItemStatus.DUPLICATE:
            yield [where, "duplicate", "statement", f"Same as {duplicate_of}.", statement]
        for field, message in warnings:
            yield [where, "warning", field, message, statement]


def existing_problems_by_key(*, teacher: User, keys: list[str]) -> dict[str, str]:
    """content_key → the title of the teacher's set that already holds that problem."""
    found: dict[str, str] = {}
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), 1000):  # stay far below any database's parameter limit
        chunk = unique[start : start + 1000]
        rows = Problem.objects.filter(
            problem_set__owner=teacher, content_key__in=chunk
        ).values_list("content_key", "problem_set__title")
        for key, title in rows:
            found.setdefault(key, title)
    return found


@dataclass(frozen=True)
class PoolProblem:
    """One problem of the training pool, with where it came from. `as_dict()` is JSON-safe."""

    problem_id: int
    statement: str
    domain: str  # "math" | "science"
    answer_kind: str  # "expression" | "number" | "choice"
    reference_answer: str  # for "choice", the key letter
    tolerance: float | None  # relative, as training.answers.verify takes it
    unit: str
    choices: tuple[str, ...]
    solution: str
    difficulty: int | None
    tags: tuple[str, ...]
    content_key: str
    problem_set_id: int | None
    problem_set_title: str
    teacher_id: int | None
    teacher_username: str
    training_approved_by: str  # who let the set into the pool ("" if the account is gone)
    training_approved_at: str  # when, ISO 8601

    def as_dict(self) -> dict:
        return asdict(self)


def training_pool_queryset() -> QuerySet[Problem]:
    """Every problem with a verified reference answer that its teacher has not excluded, in a set
    approved for training. Problems typed outside a set (a student's own question) never join."""
    return Problem.objects.filter(in_pool_q(), problem_set__training_approved_at__isnull=False)


def training_pool_problems(
    *, domains: list[str] | None = None, limit: int | None = None
) -> list[PoolProblem]:
    """The pool fine-tuning draws from, oldest first, as plain records (no ORM objects).

    Provenance is the problem's set, that set's owner (the teacher), and who approved the set
    for training and when. `domains` keeps only those domains; `limit` caps
    the count (for a quick job). Read in chunks, so a pool of 100k problems stays cheap.
    """
    problems = training_pool_queryset().order_by("id")
    if domains:
        problems = problems.filter(domain__in=domains)
    if limit is not None:
        problems = problems[:limit]
    rows = problems.values(
        "id",
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
        "content_key",
        "problem_set_id",
        "problem_set__title",
        "problem_set__owner_id",
        "problem_set__owner__username",
        "created_by_id",
        "created_by__username",
        "problem_set__training_approved_by__username",
        "problem_set__training_approved_at",
    )
    return [
        PoolProblem(
            problem_id=row["id"],
            statement=row["statement"],
            domain=row["domain"],
            answer_kind=row["answer_kind"],
            reference_answer=row["reference_answer"],
            tolerance=row["tolerance"],
            unit=row["unit"],
            choices=tuple(row["choices"] or ()),
            solution=row["solution"],
            difficulty=row["difficulty"],
            tags=tuple(row["tags"] or ()),
            content_key=row["content_key"],
            problem_set_id=row["problem_set_id"],
            problem_set_title=row["problem_set__title"] or "",
            teacher_id=row["problem_set__owner_id"] or row["created_by_id"],
            teacher_username=row["problem_set__owner__username"]
            or row["created_by__username"]
            or "",
            training_approved_by=row["problem_set__training_approved_by__username"] or "",
            training_approved_at=row["problem_set__training_approved_at"].isoformat(),
        )
        for row in rows.iterator(chunk_size=2000)
    ]


# --- the admin's set review ----------------------------------------------------------------

# The tabs of the review page: key → (label, condition on ProblemSet).
SET_REVIEW_FILTERS = {
    "practice": ("Practice sets not public", Q(is_practice=True, is_public=False)),
    "training": ("Awaiting training approval", Q(training_approved_at__isnull=True)),
    "public": ("Public", Q(is_public=True)),
    "approved": ("Approved for training", Q(training_approved_at__isnull=False)),
    "all": ("Every set", Q()),
}


def set_review_list(*, show: str = "practice", query: str = "") -> QuerySet[ProblemSet]:
    """Every teacher's sets for the admin, newest first, with `problem_count` and `ready_count`
    (problems ready for training); "training" keeps only sets that have ready problems."""
    _, condition = SET_REVIEW_FILTERS.get(show, SET_REVIEW_FILTERS["practice"])
    sets = (
        ProblemSet.objects.filter(condition)
        .select_related("owner", "made_public_by", "training_approved_by")
        .annotate(
            problem_count=Count("problems", distinct=True),
            ready_count=Count("problems", filter=in_pool_q("problems__"), distinct=True),
        )
    )
    if show == "training":
        sets = sets.filter(ready_count__gt=0)
    if query.strip():
        sets = sets.filter(
            Q(title__icontains=query.strip()) | Q(owner__username__iexact=query.strip())
        )
    return sets.order_by("-created_at", "-id")


def set_review_get(*, problem_set_id: int) -> ProblemSet:
    problem_set = (
        ProblemSet.objects.select_related("owner", "made_public_by", "training_approved_by")
        .filter(pk=problem_set_id)
        .first()
    )
    if problem_set is None:
        raise _not_found("problem set")
    return problem_set
