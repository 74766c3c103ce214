"""Class names stored before direction controls were removed on the way in lose them now
(webapp.core.user_text). Nothing to undo: the controls carried no content."""

from django.db import migrations

from webapp.core.user_text import remove_bidi_controls_from_rows


def remove_direction_controls(apps, schema_editor):
    remove_bidi_controls_from_rows(apps.get_model("classes", "Classroom"), ("name",))


class Migration(migrations.Migration):
    dependencies = [
        ("classes", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(remove_direction_controls, migrations.RunPython.noop, elidable=True),
    ]
