# The reply's OpenTelemetry trace id and its stored spans (apps/conversations/turn_trace.py).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0005_channels"),
    ]

    operations = [
        migrations.AddField(
            model_name="assistanttrace",
            name="trace_id",
            field=models.CharField(blank=True, default="", max_length=32),
        ),
        migrations.AddField(
            model_name="assistanttrace",
            name="spans",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddIndex(
            model_name="assistanttrace",
            index=models.Index(
                condition=models.Q(("trace_id", ""), _negated=True),
                fields=["trace_id"],
                name="assistant_trace_trace_id_idx",
            ),
        ),
    ]
