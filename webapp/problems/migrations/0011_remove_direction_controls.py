"""Problems and sets stored before direction controls were removed on the way in lose them now
(webapp.core.user_text): a statement whose override made it show another order than the one the
model and the checker read is shown as it is read. A cleaned statement gets its duplicate key
again. Nothing to undo: the controls carried no content."""

from django.db import migrations

from webapp.core.user_text import remove_bidi_controls_from_rows
from webapp.problems.content_key import problem_content_key


def _new_key(problem) -> tuple[str, ...]:
    problem.content_key = problem_content_key(problem.statement)
    return ("content_key",)


def remove_direction_controls(apps, schema_editor):
    remove_bidi_controls_from_rows(
        apps.get_model("problems", "ProblemSet"), ("title", "description")
    )
    remove_bidi_controls_from_rows(
        apps.get_model("problems", "Problem"),
        ("statement", "reference_answer", "solution", "unit"),
        ("choices", "tags"),
        also=_new_key,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("problems", "0010_remove_problemupload_items"),
    ]

    operations = [
        migrations.RunPython(remove_direction_controls, migrations.RunPython.noop, elidable=True),
    ]
