"""Items of a staged upload become rows (`ProblemUploadItem`), one per item in file order, so the
preview reads a page of them instead of decoding the whole file; 0009 copies the items of uploads
staged before, 0010 drops the `ProblemUpload.items` list."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("problems", "0007_upload_import_in_background"),
    ]

    operations = [
        migrations.CreateModel(
            name="ProblemUploadItem",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("position", models.PositiveIntegerField()),
                ("number", models.PositiveIntegerField()),
                ("line", models.PositiveIntegerField(blank=True, null=True)),
                ("where", models.CharField(max_length=32)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("ready", "Ready"),
                            ("error", "Error"),
                            ("duplicate", "Duplicate"),
                        ],
                        max_length=10,
                    ),
                ),
                ("data", models.JSONField(default=dict)),
                ("errors", models.JSONField(default=list)),
                ("warnings", models.JSONField(default=list)),
                ("duplicate_of", models.TextField(blank=True)),
                (
                    "upload",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="staged_items",
                        to="problems.problemupload",
                    ),
                ),
            ],
            options={
                "ordering": ["position"],
                "indexes": [
                    models.Index(fields=["upload", "status", "position"], name="upload_item_status")
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("upload", "position"), name="upload_item_position"
                    )
                ],
            },
        ),
    ]
