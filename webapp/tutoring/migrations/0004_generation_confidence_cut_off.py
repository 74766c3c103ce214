from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tutoring", "0003_remove_generation_prompt_text"),
    ]

    operations = [
        migrations.AddField(
            model_name="generation",
            name="confidence",
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="generation",
            name="cut_off",
            field=models.BooleanField(default=False),
        ),
    ]
