"""Uploads staged before 0008 keep their items: each `ProblemUpload.items` list is copied into
`ProblemUploadItem` rows in file order (and back into the list when the migration is reversed).
Its own migration, so the rows are written in a transaction that alters no table."""

from django.db import migrations

BATCH = 1000


def items_to_rows(apps, schema_editor):
    upload_model = apps.get_model("problems", "ProblemUpload")
    item_model = apps.get_model("problems", "ProblemUploadItem")
    uploads = upload_model.objects.exclude(items=[]).only("pk", "items")
    for upload in uploads.iterator(chunk_size=20):
        rows = [
            item_model(
                upload_id=upload.pk,
                position=position,
                number=item.get("number") or position + 1,
                line=item.get("line"),
                where=item.get("where")
                or (
                    f"Line {item['line']}"
                    if item.get("line") is not None
                    else f"Item {item.get('number') or position + 1}"
                ),
                status=item.get("status", "error"),
                data=item.get("data", {}),
                errors=item.get("errors", []),
                warnings=item.get("warnings", []),
                duplicate_of=item.get("duplicate_of", ""),
            )
            for position, item in enumerate(upload.items or [])
        ]
        item_model.objects.bulk_create(rows, batch_size=BATCH)


def rows_to_items(apps, schema_editor):
    upload_model = apps.get_model("problems", "ProblemUpload")
    item_model = apps.get_model("problems", "ProblemUploadItem")
    upload_ids = item_model.objects.values_list("upload_id", flat=True).distinct()
    for upload_id in list(upload_ids):
        rows = item_model.objects.filter(upload_id=upload_id).order_by("position")
        items = [
            {
                "number": row.number,
                "line": row.line,
                "where": row.where,
                "status": row.status,
                "data": row.data,
                "errors": row.errors,
                "warnings": row.warnings,
                "duplicate_of": row.duplicate_of,
            }
            for row in rows.iterator(chunk_size=BATCH)
        ]
        upload_model.objects.filter(pk=upload_id).update(items=items)


class Migration(migrations.Migration):
    dependencies = [
        ("problems", "0008_upload_items_as_rows"),
    ]

    operations = [
        migrations.RunPython(items_to_rows, rows_to_items),
    ]
