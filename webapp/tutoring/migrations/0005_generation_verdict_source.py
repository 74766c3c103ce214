"""Where a generation's verdict came from (`Generation.verdict_source`).

Until now the worker graded a solution against the answer key only, so every stored verdict that
says correct or wrong came from the key. The rest keep a blank source, which the page reads as
"finished before the worker recorded its checks" and checks a pure calculation as it always did;
working the calculation check out here instead would run the answer checker on every old answer
at migrate time (see `check_selectors.generation_answer_check`).
"""

from django.db import migrations, models


def answer_key_verdicts(apps, schema_editor):
    Generation = apps.get_model("tutoring", "Generation")
    Generation.objects.filter(verdict__in=["correct", "wrong"]).update(verdict_source="answer_key")


class Migration(migrations.Migration):
    dependencies = [
        ("tutoring", "0004_generation_confidence_cut_off"),
    ]

    operations = [
        migrations.AddField(
            model_name="generation",
            name="verdict_source",
            field=models.CharField(
                blank=True,
                choices=[
                    ("answer_key", "Answer key"),
                    ("calculation", "Exact calculation"),
                    ("none", "Nothing could check it"),
                ],
                max_length=16,
            ),
        ),
        migrations.RunPython(answer_key_verdicts, migrations.RunPython.noop, elidable=True),
    ]
