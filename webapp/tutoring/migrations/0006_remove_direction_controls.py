"""Students' own answers and feedback stored before direction controls were removed on the way in
lose them now (webapp.core.user_text): an answer shown in another order than the one the checker
read is shown as it was checked. Nothing to undo: the controls carried no content."""

from django.db import migrations

from webapp.core.user_text import remove_bidi_controls_from_rows


def remove_direction_controls(apps, schema_editor):
    remove_bidi_controls_from_rows(apps.get_model("tutoring", "OwnAnswer"), ("answer",))
    remove_bidi_controls_from_rows(apps.get_model("tutoring", "Feedback"), ("text",))


class Migration(migrations.Migration):
    dependencies = [
        ("tutoring", "0005_generation_verdict_source"),
    ]

    operations = [
        migrations.RunPython(remove_direction_controls, migrations.RunPython.noop, elidable=True),
    ]
