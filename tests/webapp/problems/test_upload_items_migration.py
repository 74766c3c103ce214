"""Migrations 0008-0010 move the items of uploads staged before them from the `items` JSON list
into `ProblemUploadItem` rows, in file order, and back when reversed."""

import pytest

from tests.fixtures.migrations import migrate

BEFORE = [("problems", "0007_upload_import_in_background")]
AFTER = [("problems", "0010_remove_problemupload_items")]
ITEMS = [
    {
        "number": 1,
        "line": 2,
        "where": "Line 2",
        "status": "ready",
        "data": {"statement": "What is 2 + 3?", "reference_error": "", "content_key": "k1"},
        "errors": [],
        "warnings": [["answer", "No unit."]],
        "duplicate_of": "",
    },
    {
        "number": 2,
        "line": None,
        "where": "Item 2",
        "status": "error",
        "data": {"statement": "", "reference_error": ""},
        "errors": [["statement", "The statement is empty."]],
        "warnings": [],
        "duplicate_of": "",
    },
    {
        "number": 3,
        "line": 4,
        "where": "Line 4",
        "status": "duplicate",
        "data": {"statement": "What is 2 + 3?", "reference_error": "", "content_key": "k1"},
        "errors": [],
        "warnings": [],
        "duplicate_of": "the same problem at line 2 of this file",
    },
]


@pytest.mark.django_db(transaction=True)
def test_staged_items_move_to_rows_and_back():
    apps = migrate(BEFORE)
    user = apps.get_model("accounts", "User").objects.create(username="t-mig", role="teacher")
    upload_model = apps.get_model("problems", "ProblemUpload")
    staged = upload_model.objects.create(
        owner=user, filename="a.csv", source_format="csv", encoding="utf-8", items=ITEMS
    )
    empty = upload_model.objects.create(
        owner=user, filename="b.csv", source_format="csv", encoding="utf-8"
    )
    try:
        apps = migrate(AFTER)
        rows = apps.get_model("problems", "ProblemUploadItem").objects.order_by("position")
        assert [(row.upload_id, row.position) for row in rows] == [(staged.pk, n) for n in range(3)]
        moved = [
            {
                name: getattr(row, name)
                for name in ("number", "line", "where", "status", "data", "errors", "warnings")
            }
            | {"duplicate_of": row.duplicate_of}
            for row in rows
        ]
        assert moved == ITEMS

        apps = migrate(BEFORE)
        back = apps.get_model("problems", "ProblemUpload").objects
        assert back.get(pk=staged.pk).items == ITEMS
        assert back.get(pk=empty.pk).items == []
    finally:
        migrate(AFTER)
