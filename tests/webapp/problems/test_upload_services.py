"""Upload → preview → import against PostgreSQL: staging, duplicates, skip vs stop, and files that
are refused leave nothing at all in the database."""

from pathlib import Path

import pytest

from webapp.core.errors import ServiceError
from webapp.problems import services
from webapp.problems.importers import UploadRefused
from webapp.problems.models import OnError, Problem, ProblemSet, ProblemUpload

pytestmark = pytest.mark.django_db
EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "examples"


def preview(teacher, name: str, **options) -> ProblemUpload:
    path = EXAMPLES / name
    return services.problem_upload_preview(
        teacher=teacher, data=path.read_bytes(), filename=path.name, **options
    )


def nothing_stored() -> bool:
    return not (
        ProblemUpload.objects.exists() or ProblemSet.objects.exists() or Problem.objects.exists()
    )


@pytest.mark.parametrize(
    "name,count",
    [
        ("problems.csv", 8),
        ("problems.json", 5),
        ("problems.jsonl", 5),
        ("problems.gift", 7),
        ("problems-aiken.txt", 4),
    ],
)
def test_each_example_previews_then_imports_exactly(teacher, name, count):
    staged = preview(teacher, name)
    assert (staged.ready_count, staged.error_count, staged.duplicate_count) == (count, 0, 0)
    assert not Problem.objects.exists()  # a preview saves no problem

    result = services.problem_upload_import(upload=staged, teacher=teacher, on_error=OnError.STOP)

    assert result.imported == count
    problems = list(result.problem_set.problems.order_by("position"))
    assert [p.position for p in problems] == list(range(count))
    assert all(p.created_by == teacher and p.has_verified_reference for p in problems)
    assert not ProblemUpload.objects.exists()  # the staged upload is gone once imported


def test_json_title_becomes_the_set_title(teacher):
    result = services.problem_upload_import(
        upload=preview(teacher, "problems.json"), teacher=teacher, on_error=OnError.SKIP
    )
    assert result.problem_set.title == "Fractions and motion"
    assert result.problem_set.source_format == "json"


def test_skip_bad_items_imports_the_rest_and_flags_unreadable_answers(teacher):
    staged = preview(teacher, "with-errors/problems.csv")
    # 10 rows: 5 with errors, 1 duplicate within the file, 4 ready (one flagged).
    assert (staged.ready_count, staged.error_count, staged.duplicate_count) == (4, 5, 1)
    assert staged.flagged_count == 1
    duplicate = staged.staged_items.get(status="duplicate")
    assert duplicate.line == 6 and "line 2" in duplicate.duplicate_of

    result = services.problem_upload_import(upload=staged, teacher=teacher, on_error=OnError.SKIP)

    assert (result.imported, result.skipped_errors, result.skipped_duplicates) == (4, 5, 1)
    assert result.flagged == 1
    flagged = Problem.objects.get(reference_error__gt="")
    assert not flagged.has_verified_reference and flagged.pool_status == "flagged"


def test_stop_on_error_imports_nothing(teacher):
    staged = preview(teacher, "with-errors/problems.gift")
    with pytest.raises(ServiceError, match="nothing was imported"):
        services.problem_upload_import(upload=staged, teacher=teacher, on_error=OnError.STOP)
    assert not Problem.objects.exists() and not ProblemSet.objects.exists()
    assert ProblemUpload.objects.filter(pk=staged.pk).exists()  # still there to skip instead


def test_duplicates_of_stored_problems_are_reported_not_imported_twice(teacher):
    services.problem_upload_import(
        upload=preview(teacher, "problems.csv"), teacher=teacher, on_error=OnError.SKIP
    )
    again = preview(teacher, "problems.csv")
    assert (again.ready_count, again.duplicate_count) == (0, 8)
    assert "your set" in again.staged_items.order_by("position")[0].duplicate_of
    with pytest.raises(ServiceError, match="nothing left to import"):
        services.problem_upload_import(upload=again, teacher=teacher, on_error=OnError.SKIP)
    assert Problem.objects.count() == 8


def test_duplicates_are_per_teacher(teacher, other_teacher):
    services.problem_upload_import(
        upload=preview(teacher, "problems.csv"), teacher=teacher, on_error=OnError.SKIP
    )
    theirs = preview(other_teacher, "problems.csv")
    assert (theirs.ready_count, theirs.duplicate_count) == (8, 0)


def test_an_import_landing_after_the_preview_is_caught_at_import(teacher):
    first, second = preview(teacher, "problems.jsonl"), preview(teacher, "problems.jsonl")
    services.problem_upload_import(upload=first, teacher=teacher, on_error=OnError.SKIP)
    with pytest.raises(ServiceError, match="nothing left"):
        services.problem_upload_import(upload=second, teacher=teacher, on_error=OnError.SKIP)
    assert Problem.objects.count() == 5


def test_import_into_an_existing_set_continues_its_numbering(teacher):
    target = services.problem_set_create(teacher=teacher, title="Mixed")
    services.problem_create(
        problem_set=target, teacher=teacher, fields={"statement": "Q0", "answer": "1"}
    )
    staged = preview(teacher, "problems-aiken.txt", target_set=target)
    result = services.problem_upload_import(upload=staged, teacher=teacher, on_error=OnError.SKIP)
    assert result.problem_set == target
    assert list(target.problems.order_by("position").values_list("position", flat=True)) == [
        0,
        1,
        2,
        3,
        4,
    ]


def test_another_teachers_set_or_upload_is_not_found(teacher, other_teacher):
    theirs = services.problem_set_create(teacher=other_teacher, title="Theirs")
    with pytest.raises(ServiceError) as not_found:
        preview(teacher, "problems.csv", target_set=theirs)
    assert not_found.value.status == 404
    staged = preview(other_teacher, "problems.csv")
    with pytest.raises(ServiceError):
        services.problem_upload_import(upload=staged, teacher=teacher, on_error=OnError.SKIP)
    assert not Problem.objects.exists()


HOSTILE_FILES = {
    "zip.csv": b"PK\x03\x04" + bytes(range(256)) * 4,
    "binary.json": bytes(range(256)) * 8,
    "deep.json": b"[" * 100_000 + b"]" * 100_000,
    "deep-field.json": b'[{"statement": {"a": {"b": {"c": {"d": {"e": {"f": "x"}}}}}}}]',
    "formula.csv": b'statement,answer\nOK,1\n"=HYPERLINK(""http://evil.example"")",2\n',
    "script.gift": b"::x:: <script>alert(1)</script> What is 2+2? {=4}\n",
    "handler.jsonl": b'{"statement": "<img src=x onerror=alert(1)>", "answer": "1"}\n',
    "empty.csv": b"",
}


@pytest.mark.parametrize("name", HOSTILE_FILES)
def test_hostile_files_are_refused_without_a_trace(teacher, name):
    with pytest.raises(UploadRefused):
        services.problem_upload_preview(teacher=teacher, data=HOSTILE_FILES[name], filename=name)
    assert nothing_stored()


def test_a_file_over_the_size_limit_is_refused_without_a_trace(teacher, settings):
    settings.PROBLEM_UPLOAD_MAX_BYTES = 1000
    data = b"statement,answer\n" + b"Compute 1 + 1.,2\n" * 100
    with pytest.raises(UploadRefused, match="limit"):
        services.problem_upload_preview(teacher=teacher, data=data, filename="big.csv")
    assert nothing_stored()


def test_single_problem_create_update_and_duplicate_check(teacher):
    problem_set = services.problem_set_create(teacher=teacher, title="By hand")
    problem = services.problem_create(
        problem_set=problem_set,
        teacher=teacher,
        fields={
            "statement": "A 3 kg mass accelerates at 2 m/s^2. Net force?",
            "answer_kind": "number",
            "answer": "6",
            "unit": "N",
            "tolerance": "2%",
        },
    )
    assert (problem.reference_answer, problem.unit, problem.tolerance) == (
        "6",
        "N",
        pytest.approx(0.02),
    )
    assert problem.has_verified_reference and problem.answer_display == "6 N (± 2%)"

    with pytest.raises(services.ProblemInvalid) as invalid:
        services.problem_create(
            problem_set=problem_set,
            teacher=teacher,
            fields={"statement": "a 3 kg mass accelerates at 2 m/s^2.  net force", "answer": "6"},
        )
    assert invalid.value.issues[0].field == "statement"

    with pytest.raises(services.ProblemInvalid) as invalid:
        services.problem_update(
            problem=problem,
            teacher=teacher,
            fields={"statement": "Q", "answer_kind": "number", "answer": "six"},
        )
    assert invalid.value.issues[0].field == "answer"

    services.problem_update(
        problem=problem,
        teacher=teacher,
        fields={
            "statement": "Pick the force unit.",
            "answer_kind": "choice",
            "choices": ["J", "N"],
            "answer": "B",
        },
    )
    problem.refresh_from_db()
    assert problem.answer_display == "B) N"


def test_single_problem_refuses_script(teacher):
    problem_set = services.problem_set_create(teacher=teacher, title="By hand")
    with pytest.raises(services.ProblemInvalid, match="script"):
        services.problem_create(
            problem_set=problem_set, teacher=teacher, fields={"statement": "<script>x</script>"}
        )
    assert not Problem.objects.exists()


def symbolic_csv(count: int) -> bytes:
    rows = [f"Expand $(x+{n})^2$.,expression,x^2+{2 * n}x+{n * n}" for n in range(1, count + 1)]
    rows.append("Integrate $x$.,expression,\\frac{x^2}{2")  # the verifier cannot read this one
    return ("statement,answer_type,answer\n" + "\n".join(rows) + "\n").encode()


def test_many_symbolic_answers_are_checked_after_the_request(
    teacher, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(services, "INLINE_ANSWER_CHECKS", 5)
    enqueued = []
    monkeypatch.setattr(
        "webapp.celery_app.send_task", lambda name, args, **options: enqueued.append((name, args))
    )
    with django_capture_on_commit_callbacks(execute=True):
        staged = services.problem_upload_preview(
            teacher=teacher, data=symbolic_csv(12), filename="algebra.csv"
        )
    # The task is sent, by its name, once the staged row is committed.
    assert enqueued == [("problems.check_upload_answers", [staged.pk])]
    assert (staged.pending_checks, staged.checks_total, staged.flagged_count) == (13, 13, 0)
    with pytest.raises(ServiceError, match="still reading 13"):
        services.problem_upload_import(upload=staged, teacher=teacher, on_error=OnError.SKIP)

    assert services.problem_upload_check_answers(upload_id=staged.pk) == 13

    staged.refresh_from_db()
    assert (staged.pending_checks, staged.checks_done, staged.flagged_count) == (0, 13, 1)
    assert not any(item.data.get("reference_pending") for item in staged.staged_items.all())
    result = services.problem_upload_import(upload=staged, teacher=teacher, on_error=OnError.SKIP)
    assert (result.imported, result.flagged) == (13, 1)


def test_few_symbolic_answers_are_checked_at_once(teacher):
    staged = services.problem_upload_preview(
        teacher=teacher, data=symbolic_csv(3), filename="a.csv"
    )
    assert (staged.pending_checks, staged.flagged_count) == (0, 1)


def test_background_check_of_a_discarded_upload_stops_quietly(teacher, monkeypatch):
    monkeypatch.setattr(services, "INLINE_ANSWER_CHECKS", 0)
    staged = services.problem_upload_preview(
        teacher=teacher, data=symbolic_csv(2), filename="a.csv"
    )
    upload_id = staged.pk
    services.problem_upload_discard(upload=staged, teacher=teacher)
    assert services.problem_upload_check_answers(upload_id=upload_id) == 0


def test_symbolic_answers_checked_in_the_request_stop_at_a_time_budget(teacher, monkeypatch):
    # Each check may run to the checker's limit (1 s): 150 answers that each ran out of time held
    # one upload request (a 16 KiB file) for 150 s. Past the budget the rest go to the task.
    from webapp.problems import importers

    now = [0.0]
    real_check = importers.check_reference

    def one_second_check(data, **options):
        now[0] += 1.0
        return real_check(data, **options)

    monkeypatch.setattr(importers, "_clock", lambda: now[0])
    monkeypatch.setattr(importers, "check_reference", one_second_check)
    monkeypatch.setattr(services, "INLINE_ANSWER_CHECK_SECONDS", 5.0)
    staged = services.problem_upload_preview(
        teacher=teacher, data=symbolic_csv(12), filename="algebra.csv"
    )
    assert now[0] == 5.0
    assert (staged.pending_checks, staged.checks_total, staged.flagged_count) == (8, 8, 0)
    assert services.problem_upload_check_answers(upload_id=staged.pk) == 8
    staged.refresh_from_db()
    assert (staged.pending_checks, staged.flagged_count) == (0, 1)
    result = services.problem_upload_import(upload=staged, teacher=teacher, on_error=OnError.SKIP)
    assert (result.imported, result.flagged) == (13, 1)
