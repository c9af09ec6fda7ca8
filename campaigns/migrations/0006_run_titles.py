"""Readable titles for the campaign runs recorded before runs kept one (dashboard 0011).

Named as a run requested today would be (RunOperation.title), from the names registered today:
"<generator> → <topic>" and "<Altcraft trigger> · chunk k of n (5,000 rows)". The words are
written out here rather than imported, so later changes to the operations cannot change what
this migration does.
"""

from django.db import migrations
from django.db.models import Count

EVENT_GENERATOR = "optimove_run_event_generator"
ALTCRAFT = ("altcraft_start_batch", "altcraft_import_and_start")
BATCH = 2000


def _plural(count, word):
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def name_runs(apps, schema_editor):
    Run = apps.get_model("dashboard", "Run")
    EventGenerator = apps.get_model("campaigns", "EventGenerator")
    Topic = apps.get_model("campaigns", "Topic")
    AltcraftLaunch = apps.get_model("campaigns", "AltcraftLaunch")
    AltcraftTrigger = apps.get_model("campaigns", "AltcraftTrigger")

    generators = {
        (connection_id, external_id.lower()): (pk, name)
        for pk, connection_id, external_id, name in EventGenerator.objects.values_list(
            "pk", "connection_id", "external_id", "name"
        )
    }
    topics = {
        (generator_id, key): name
        for generator_id, key, name in Topic.objects.values_list("generator_id", "key", "name")
    }
    launches = {
        launch["pk"]: (launch["trigger__name"], launch["chunk_count"])
        for launch in AltcraftLaunch.objects.annotate(chunk_count=Count("chunks")).values(
            "pk", "trigger__name", "chunk_count"
        )
    }
    triggers = {
        (connection_id, trigger_id): name
        for connection_id, trigger_id, name in AltcraftTrigger.objects.values_list(
            "connection_id", "trigger_id", "name"
        )
    }

    def event_generator_title(run):
        generator_id = str(run.parameters.get("event_generator_id") or "")
        topic_key = run.parameters.get("topic_key")
        generator = generators.get((run.connection_id, generator_id.lower()))
        if generator is None:
            return f"Event generator {generator_id} → topic {topic_key}"
        return f"{generator[1]} → {topics.get((generator[0], topic_key)) or f'topic {topic_key}'}"

    def altcraft_title(run):
        chunk = run.parameters.get("chunk")
        if isinstance(chunk, dict):
            rows = _plural(chunk.get("items") or 0, "row")
            launch = launches.get(chunk.get("launch"))
            if launch is None:
                return f"Launch {chunk.get('launch')} · chunk {chunk.get('number')} ({rows})"
            return f"{launch[0]} · chunk {chunk.get('number')} of {launch[1]} ({rows})"
        trigger_id = run.parameters.get("trigger_id")
        name = triggers.get((run.connection_id, trigger_id)) or f"Trigger {trigger_id}"
        verb = "import " if run.operation == "altcraft_import_and_start" else ""
        return f"{name} · {verb}{_plural(len(run.parameters.get('data') or []), 'profile')}"

    runs = (
        Run.objects.filter(operation__in=[EVENT_GENERATOR, *ALTCRAFT], title="")
        .only("pk", "operation", "connection_id", "parameters")
        .order_by("pk")
    )
    named = []
    for run in runs.iterator(chunk_size=BATCH):
        title = (
            event_generator_title(run) if run.operation == EVENT_GENERATOR else altcraft_title(run)
        )
        run.title = " ".join(title.split())[:300]
        named.append(run)
        if len(named) == BATCH:
            Run.objects.bulk_update(named, ["title"])
            named = []
    Run.objects.bulk_update(named, ["title"])


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0005_altcraft_launch_column"),
        ("dashboard", "0012_run_title_and_connection_name"),
    ]

    operations = [
        migrations.RunPython(name_runs, migrations.RunPython.noop, elidable=True),
    ]
