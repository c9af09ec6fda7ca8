"""A run keeps its readable name and its connection's name as they were when it was requested.

Runs recorded before get their connection's name as it is today (the best there is); their
titles are filled in by the apps whose operations they are (campaigns, batchjobs), which know
the names of what the runs acted on.
"""

from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def name_connections(apps, schema_editor):
    Run = apps.get_model("dashboard", "Run")
    VendorConnection = apps.get_model("dashboard", "VendorConnection")
    Run.objects.filter(connection_name="").update(
        connection_name=Subquery(
            VendorConnection.objects.filter(pk=OuterRef("connection_id")).values("name")[:1]
        )
    )


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0011_sending_pause"),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="connection_name",
            field=models.CharField(blank=True, max_length=120),
        ),
        migrations.AddField(
            model_name="run",
            name="title",
            field=models.CharField(blank=True, max_length=300),
        ),
        migrations.RunPython(name_connections, migrations.RunPython.noop, elidable=True),
    ]
