from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0003_evaluation_runner"),
    ]

    operations = [
        migrations.AddField(
            model_name="trainingjob",
            name="rank_beats",
            field=models.JSONField(blank=True, default=list),
        ),
    ]
