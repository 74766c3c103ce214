"""A staged upload's items are rows (`ProblemUploadItem`), in file order: the preview pages through
each tab in the database (one page fetched per view, however big the file), the read task writes
the rows only for its own try, the background answer check updates them, the import and the CSV
report read them. The verifier's verdicts are stubbed (fractions unreadable, the rest fine): these
tests are about the rows, and a loaded machine can time the real checker out."""

import csv
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from webapp.problems import selectors, services, views
from webapp.problems.importers import validation
from webapp.problems.models import (
    ItemStatus,
    OnError,
    Problem,
    ProblemUpload,
    ProblemUploadItem,
    UploadState,
)
from webapp.problems.tasks import read_upload

pytestmark = pytest.mark.django_db


def mixed_csv(rounds: int) -> bytes:
    """Each round: two ready rows, an error (no statement), a duplicate of the round's first row
    and, every third round, a ready row whose answer the verifier cannot read (flagged)."""
    rows = []
    for n in range(rounds):
        rows += [
            f"What is {n} + {n}? (case {n}),number,{2 * n}",
            f"What is {n} times 3? (case {n}),number,{3 * n}",
            ",number,7",
            f"What is {n} + {n}? (case {n}),number,{2 * n}",
        ]
        if n % 3 == 0:
            rows.append(f"Integrate $x^{n}$ (case {n}).,expression,\\frac{{x^2}}{{2")
    return ("statement,answer_type,answer\n" + "\n".join(rows) + "\n").encode()


def verifier_that_cannot_read_fractions(
    answer: str, kind: str, *, options=None, patience_s=None
) -> str | None:
    """The verifier's verdict without its processes (a loaded machine can time them out)."""
    return "it cannot parse this" if answer.startswith("\\frac") else None


@pytest.fixture(autouse=True)
def steady_verifier(monkeypatch):
    monkeypatch.setattr(validation, "reference_problem", verifier_that_cannot_read_fractions)


def preview(teacher, data: bytes) -> ProblemUpload:
    return services.problem_upload_preview(teacher=teacher, data=data, filename="mixed.csv")


def old_tab(items: list[ProblemUploadItem], tab: str) -> list[ProblemUploadItem]:
    """What the preview showed when the items were one JSON list: a Python filter over them all."""
    if tab == "flagged":
        return [i for i in items if i.status == "ready" and i.data.get("reference_error")]
    if tab in ("error", "duplicate"):
        return [i for i in items if i.status == tab]
    return items


def test_the_items_are_rows_in_file_order_with_the_upload_counts(teacher):
    staged = preview(teacher, mixed_csv(9))
    rows = list(staged.staged_items.order_by("position"))
    assert [row.position for row in rows] == list(range(len(rows))) and len(rows) == 39
    assert [row.line for row in rows] == list(range(2, 41))
    assert rows[2].status == ItemStatus.ERROR and rows[2].where == "Line 4"
    assert rows[3].status == ItemStatus.DUPLICATE and "line 2" in rows[3].duplicate_of
    assert rows[4].data["reference_error"] and rows[4].warnings[0][0] == "answer"
    assert (staged.ready_count, staged.error_count, staged.duplicate_count) == (21, 9, 9)
    assert staged.flagged_count == 3 and staged.item_count == len(rows)


@pytest.mark.parametrize("tab", list(views.PREVIEW_TABS))
def test_each_tab_is_the_old_filter_in_file_order(teacher, tab):
    staged = preview(teacher, mixed_csv(9))
    everything = list(staged.staged_items.order_by("position"))
    expected = [item.position for item in old_tab(everything, tab)]
    got = list(selectors.problem_upload_items(upload=staged, show=tab))
    assert [item.position for item in got] == expected and expected
    assert selectors.problem_upload_item_count(upload=staged, show=tab) == len(expected)


def test_a_reference_error_of_an_error_or_duplicate_item_is_not_flagged(teacher):
    staged = preview(teacher, mixed_csv(3))
    ProblemUploadItem.objects.filter(upload=staged).exclude(status=ItemStatus.READY).update(
        data={"statement": "x", "reference_error": "unreadable"}
    )
    flagged = selectors.problem_upload_items(upload=staged, show="flagged")
    assert [item.where for item in flagged] == ["Line 6"]


def test_the_preview_pages_through_a_tab_in_file_order(teacher, teacher_client, monkeypatch):
    monkeypatch.setattr(views, "PREVIEW_ITEMS_PER_PAGE", 4)
    staged = preview(teacher, mixed_csv(9))
    url = reverse("problems:upload_preview", args=[staged.token])
    errors = list(staged.staged_items.filter(status="error").values_list("where", flat=True))
    assert errors[:3] == ["Line 4", "Line 9", "Line 13"] and len(errors) == 9

    html = teacher_client.get(url, {"tab": "error", "page": 2}).content.decode()
    shown = [where for where in errors if f"<td>{where}</td>" in html]
    assert shown == errors[4:8] and "Page 2 of 3" in html
    last = teacher_client.get(url, {"tab": "error", "page": 3}).content.decode()
    assert [where for where in errors if f"<td>{where}</td>" in last] == errors[8:]
    assert "Page 3 of 3" in last
    # A page past the end shows the last one, as before.
    past = teacher_client.get(url, {"tab": "error", "page": 99}).content.decode()
    assert [where for where in errors if f"<td>{where}</td>" in past] == errors[8:]

    everything = teacher_client.get(url, {"page": 1}).content.decode()
    assert [f"<td>Line {n}</td>" in everything for n in range(2, 8)] == [True] * 4 + [False] * 2
    flagged = teacher_client.get(url, {"tab": "flagged"}).content.decode()
    assert "<td>Line 6</td>" in flagged and "<td>Line 19</td>" in flagged
    assert "<td>Line 2</td>" not in flagged and "Page 1 of" not in flagged


def test_the_error_panel_lists_the_first_ten_errors(teacher, teacher_client):
    staged = preview(teacher, mixed_csv(12))
    html = teacher_client.get(reverse("problems:upload_preview", args=[staged.token]))
    page = html.content.decode()
    errors = list(staged.staged_items.filter(status="error").values_list("where", flat=True))
    assert len(errors) == 12
    start = page.index('id="errors-title"')
    panel = page[start : page.index("</section>", start)]
    assert [where for where in errors if f"<strong>{where}</strong>" in panel] == errors[:10]
    assert "See all 12 items with errors" in panel


def stage_big(teacher, count: int) -> ProblemUpload:
    """A staged upload of `count` items written straight as rows (reading a file that big would
    take seconds): every seventh an error, the rest ready."""
    upload = ProblemUpload.objects.create(
        owner=teacher, filename="big.csv", source_format="csv", encoding="utf-8"
    )
    rows = []
    for position in range(count):
        error = position % 7 == 3
        rows.append(
            ProblemUploadItem(
                upload=upload,
                position=position,
                number=position + 1,
                line=position + 2,
                where=f"Line {position + 2}",
                status=ItemStatus.ERROR if error else ItemStatus.READY,
                data={
                    "statement": "" if error else f"What is {position} + 1?",
                    "answer_kind": "number",
                    "reference_answer": str(position + 1),
                    "unit": "",
                    "choices": [],
                    "reference_error": "",
                },
                errors=[["statement", "The statement is empty."]] if error else [],
            )
        )
    ProblemUploadItem.objects.bulk_create(rows, batch_size=2000)
    errors = sum(1 for row in rows if row.status == ItemStatus.ERROR)
    ProblemUpload.objects.filter(pk=upload.pk).update(
        ready_count=count - errors, error_count=errors
    )
    upload.refresh_from_db()
    return upload


@pytest.mark.parametrize(
    ("query", "first_line"),
    [({}, 2), ({"page": 100}, 4952), ({"tab": "error", "page": 20}, 6655)],
    ids=["page 1", "a middle page", "the error tab"],
)
def test_a_preview_of_a_big_upload_fetches_one_page_of_items(
    teacher, teacher_client, monkeypatch, django_assert_max_num_queries, query, first_line
):
    staged = stage_big(teacher, 10_000)
    url = reverse("problems:upload_preview", args=[staged.token])
    teacher_client.get(url)  # the session, the templates
    loaded = []
    real_from_db = ProblemUploadItem.from_db.__func__

    def counted(cls, db, field_names, values):
        loaded.append(values[field_names.index("position")])
        return real_from_db(cls, db, field_names, values)

    monkeypatch.setattr(ProblemUploadItem, "from_db", classmethod(counted))
    with (
        django_assert_max_num_queries(8),
        CaptureQueriesContext(connection) as queries,
    ):
        response = teacher_client.get(url, query)
    assert response.status_code == 200
    html = response.content.decode()
    assert f"<td>Line {first_line}</td>" in html
    # The first 10 errors for the panel, then one page of the tab (50): nothing else is read.
    assert len(loaded) == 60
    assert loaded[:10] == [3 + 7 * n for n in range(10)]
    assert loaded[10] == first_line - 2 and loaded[10:] == sorted(loaded[10:])
    item_queries = [q["sql"] for q in queries if "problemuploaditem" in q["sql"]]
    assert len(item_queries) == 2
    assert all("LIMIT" in sql for sql in item_queries)
    assert not any("COUNT(" in sql for sql in item_queries)  # the counts are the upload's


def test_the_read_task_writes_the_items_only_for_its_own_try(teacher, sent, monkeypatch):
    rows = [f"What is {n} + {n}? (case {n}),{2 * n}" for n in range(600)]
    data = ("statement,answer\n" + "\n".join(rows) + "\n").encode()  # read by the task
    staged = services.problem_upload_receive(teacher=teacher, data=data, filename="big.csv")
    assert staged.state == UploadState.READING
    real_stage_items = services._stage_items

    def a_retry_while_staging(*args, **kwargs):
        items = real_stage_items(*args, **kwargs)
        # Try 1 has read the whole file; meanwhile it went silent and the teacher tried again.
        ProblemUpload.objects.filter(pk=staged.pk).update(read_try=2)
        return items

    monkeypatch.setattr(services, "_stage_items", a_retry_while_staging)
    assert read_upload(staged.pk, 1) == "superseded"
    assert not ProblemUploadItem.objects.exists()
    staged.refresh_from_db()
    assert (staged.state, staged.ready_count) == (UploadState.READING, 0)

    monkeypatch.setattr(services, "_stage_items", real_stage_items)
    assert read_upload(staged.pk, 2) == UploadState.READY
    staged.refresh_from_db()
    assert staged.staged_items.count() == staged.item_count == 600
    assert read_upload(staged.pk, 2) == "superseded"  # a redelivered task writes nothing more
    assert staged.staged_items.count() == 600


def report_csv(rounds: int) -> bytes:
    """Each round: a ready row, an error, a duplicate and a row without an answer (a warning)."""
    rows = []
    for n in range(rounds):
        rows += [
            f"What is {n} + {n}? (case {n}),{2 * n}",
            ",7",
            f"What is {n} + {n}? (case {n}),{2 * n}",
            f"Describe the number {n}.,",
        ]
    return ("statement,answer\n" + "\n".join(rows) + "\n").encode()


def test_the_report_streams_every_item_in_file_order(teacher, teacher_client):
    staged = preview(teacher, report_csv(700))  # 2,800 items: more than a chunk of the iterator
    response = teacher_client.get(reverse("problems:upload_report", args=[staged.token]))
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == ["where", "kind", "field", "message", "statement"]
    expected = []
    for item in staged.staged_items.order_by("position"):
        statement = item.data.get("statement", "")[:200]
        expected += [[item.where, "error", f, m, statement] for f, m in item.errors]
        if item.status == "duplicate":
            expected.append(
                [item.where, "duplicate", "statement", f"Same as {item.duplicate_of}.", statement]
            )
        expected += [[item.where, "warning", f, m, statement] for f, m in item.warnings]
    assert rows[1:] == expected
    kinds = [row[1] for row in expected]
    assert (kinds.count("duplicate"), kinds.count("warning")) == (700, 700)
    assert kinds.count("error") >= 700 and rows[-1][:2] == ["Line 2801", "warning"]


def symbolic_rows(count: int) -> bytes:
    rows = [f"Expand $(x+{n})^2$.,expression,x^2+{2 * n}x+{n * n}" for n in range(1, count + 1)]
    rows.insert(2, "Integrate $x$.,expression,\\frac{x^2}{2")  # the verifier cannot read this one
    return ("statement,answer_type,answer\n" + "\n".join(rows) + "\n").encode()


def test_the_answer_check_updates_the_rows_and_saves_progress_with_them(teacher, sent, monkeypatch):
    monkeypatch.setattr(services, "INLINE_ANSWER_CHECKS", 2)
    monkeypatch.setattr(services, "CHECK_PROGRESS_SECONDS", -1.0)  # save after every item
    monkeypatch.setattr(services, "ITEMS_PER_BATCH", 3)  # several chunks of pending items
    staged = preview(teacher, symbolic_rows(7))
    assert staged.pending_checks == 8 and staged.flagged_count == 0
    assert staged.staged_items.filter(data__reference_pending=True).count() == 8
    seen = []
    real_save = services._save_checked

    def save_and_look(upload, checked, *, pending):
        saved = real_save(upload, checked, pending=pending)
        row = ProblemUpload.objects.values_list("pending_checks", "flagged_count").get(pk=upload.pk)
        pending_rows = upload.staged_items.filter(data__reference_pending=True).count()
        seen.append((len(checked), *row, pending_rows))
        return saved

    monkeypatch.setattr(services, "_save_checked", save_and_look)
    assert services.problem_upload_check_answers(upload_id=staged.pk) == 8
    # Each save: the items it checked, the upload's progress and the rows agree.
    assert seen == [(1, 7, 0, 7), (1, 6, 0, 6), (1, 5, 1, 5)] + [
        (1, pending, 1, pending) for pending in range(4, -1, -1)
    ]
    flagged = staged.staged_items.get(line=4)
    assert flagged.data["reference_error"] and "reference_pending" not in flagged.data
    assert flagged.warnings[-1][0] == "answer" and "cannot read" in flagged.warnings[-1][1]
    assert [item.where for item in selectors.problem_upload_items(upload=staged, show="flagged")]
    assert services.problem_upload_check_answers(upload_id=staged.pk) == 0  # nothing pending


def test_the_answer_check_stops_quietly_when_the_upload_is_discarded(teacher, sent, monkeypatch):
    monkeypatch.setattr(services, "INLINE_ANSWER_CHECKS", 2)
    monkeypatch.setattr(services, "CHECK_PROGRESS_SECONDS", -1.0)
    staged = preview(teacher, symbolic_rows(5))
    real_check = services.check_reference
    checks = []

    def discard_after_two(data, **options):
        checks.append(1)
        if len(checks) == 2:
            services.problem_upload_discard(upload=staged, teacher=teacher)
        return real_check(data, **options)

    monkeypatch.setattr(services, "check_reference", discard_after_two)
    assert services.problem_upload_check_answers(upload_id=staged.pk) == 2
    assert len(checks) == 2
    assert not ProblemUpload.objects.exists() and not ProblemUploadItem.objects.exists()


def test_the_import_reads_the_ready_rows(teacher):
    staged = preview(teacher, mixed_csv(3))
    first = staged.staged_items.get(position=0)
    first.data["statement"] = "What is 0 + 0, said otherwise?"
    first.save(update_fields=["data"])

    result = services.problem_upload_import(upload=staged, teacher=teacher, on_error=OnError.SKIP)
    statements = list(Problem.objects.order_by("position").values_list("statement", flat=True))
    assert statements[0] == "What is 0 + 0, said otherwise?"
    assert result.imported == len(statements) == staged.ready_count == 7
    assert statements[1:3] == ["What is 0 times 3? (case 0)", "Integrate $x^0$ (case 0)."]
    assert not ProblemUploadItem.objects.exists()  # gone with the upload


def test_a_status_poll_reads_the_upload_row_only(teacher, teacher_client, sent, monkeypatch):
    monkeypatch.setattr(services, "INLINE_ANSWER_CHECKS", 2)
    staged = preview(teacher, symbolic_rows(5))  # answers left to check: the poll shows progress
    url = reverse("problems:upload_status", args=[staged.token])
    teacher_client.get(url)
    with CaptureQueriesContext(connection) as queries:
        response = teacher_client.get(url)
    assert 'id="checking"' in response.content.decode()
    sql = " ".join(query["sql"] for query in queries)
    assert "problemuploaditem" not in sql and '"raw_data"' not in sql
    assert '"file_warnings"' not in sql and '"read_error_details"' not in sql
