"""Readable titles for the daily triggers and TalkifAI starts recorded before runs kept one
(dashboard 0011): "Daily batch · 2026-12-06" and the batch job's name. The words are written out
here rather than imported, so later changes to the operations cannot change this migration."""

from django.db import migrations

DAILY = "optimove_trigger_daily"
START_JOB = "talkifai_start_batch_job"
BATCH = 2000


def name_runs(apps, schema_editor):
    Run = apps.get_model("dashboard", "Run")
    BatchJob = apps.get_model("batchjobs", "BatchJob")
    job_names = {
        (connection_id, batch_job_id): name
        for connection_id, batch_job_id, name in BatchJob.objects.values_list(
            "connection_id", "batch_job_id", "name"
        )
    }

    def title(run):
        if run.operation == DAILY:
            day = run.utc_date or run.created_at.date()
            return f"Daily batch · {day:%Y-%m-%d}"
        job_id = run.parameters.get("batch_job_id")
        return (
            run.parameters.get("batch_job_name")
            or job_names.get((run.connection_id, job_id))
            or f"Batch job {job_id}"
        )

    runs = (
        Run.objects.filter(operation__in=[DAILY, START_JOB], title="")
        .only("pk", "operation", "connection_id", "parameters", "utc_date", "created_at")
        .order_by("pk")
    )
    named = []
    for run in runs.iterator(chunk_size=BATCH):
        run.title = " ".join(str(title(run)).split())[:300]
        named.append(run)
        if len(named) == BATCH:
            Run.objects.bulk_update(named, ["title"])
            named = []
    Run.objects.bulk_update(named, ["title"])


class Migration(migrations.Migration):
    dependencies = [
        ("batchjobs", "0001_initial"),
        ("dashboard", "0012_run_title_and_connection_name"),
    ]

    operations = [
        migrations.RunPython(name_runs, migrations.RunPython.noop, elidable=True),
    ]
