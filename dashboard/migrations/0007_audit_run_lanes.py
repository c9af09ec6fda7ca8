"""Run lanes of the audit trail (issue 12, item 7): every tenant chain gets its lanes' heads.

A tenant's run events are spread over RUN_LANES chains (dashboard.audit.chain_for), whose heads
are made with the tenant's first event; verification then expects all of them. This makes them,
empty, for the tenants whose trail began before.
"""

from django.db import migrations

RUN_LANES = 8  # dashboard.audit.RUN_LANES when this migration was written


def add_lane_heads(apps, schema_editor):
    head_model = apps.get_model("dashboard", "AuditChainHead")
    main_chains = [
        chain
        for chain in head_model.objects.filter(chain__startswith="tenant:").values_list(
            "chain", flat=True
        )
        if chain.count(":") == 1
    ]
    head_model.objects.bulk_create(
        [
            head_model(chain=f"{chain}:runs:{lane}")
            for chain in main_chains
            for lane in range(1, RUN_LANES)
        ],
        ignore_conflicts=True,
    )


class Migration(migrations.Migration):
    dependencies = [("dashboard", "0006_merge_history_indexes_and_attempts_before_call")]

    operations = [migrations.RunPython(add_lane_heads, migrations.RunPython.noop)]
