from django.db import migrations, models
from django.db.models import F
from django.db.models.functions import Now


def open_attempts_may_have_started(apps, schema_editor):
    # An attempt left open by a worker before this migration may have reached the vendor: the
    # sweeper must go on treating it as started (before a person), never requeue it.
    RunAttempt = apps.get_model("dashboard", "RunAttempt")
    RunAttempt.objects.filter(finished_at__isnull=True).update(request_started_at=F("started_at"))


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0009_audit_rows_only_onto_their_chain_head"),
    ]

    # One transaction: the table stays locked until the default is in place, so no worker can
    # insert an open attempt that would read as "never started" in between.
    operations = [
        migrations.AddField(
            model_name="runattempt",
            name="request_started_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(open_attempts_may_have_started, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="runattempt",
            name="request_started_at",
            field=models.DateTimeField(blank=True, db_default=Now(), null=True),
        ),
    ]
