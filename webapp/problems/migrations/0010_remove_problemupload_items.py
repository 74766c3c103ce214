"""The staged items live in `ProblemUploadItem` rows (0008, 0009): the JSON list goes."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("problems", "0009_upload_items_copied_to_rows"),
    ]

    operations = [
        migrations.RemoveField(
            model_name="problemupload",
            name="items",
        ),
    ]
