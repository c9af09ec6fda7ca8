"""An Altcraft launch's requests are named by the trigger and their chunk: "Abandoned cart ·
chunk 1 of 3 (5,000 rows)", as they were when the launch was confirmed (issue 22)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from campaigns.altcraft_launches import services
from campaigns.altcraft_launches.models import AltcraftTrigger
from dashboard.audit.trail import Actor
from dashboard.runs.models import Run
from dashboard.runs.operations import operation_for
from tests.campaigns.altcraft_launches.conftest import actor_of, csv_bytes, prepare

pytestmark = pytest.mark.django_db


def small_limit(connection, altcraft, limit: int) -> None:
    connection.options = {"body_limit_bytes": limit}
    connection.save()
    altcraft.control("set_body_limit", {"bytes": limit})


def emails(count: int) -> list[str]:
    return [f"user{index:06d}@example.com" for index in range(count)]


def confirmed(team, trigger, count: int):
    launch = prepare(
        team.marketer, trigger, csv_bytes("email", emails(count)), content={"page": "x"}
    )
    return services.launch_confirm(
        actor=actor_of(team.marketer), launch=launch, sha256_seen=launch.source_sha256
    )


def test_each_chunk_run_is_named_by_trigger_chunk_and_rows(team, trigger, connection, altcraft):
    small_limit(connection, altcraft, 4000)
    launch = confirmed(team, trigger, 300)
    chunks = list(launch.chunks.select_related("run").order_by("number"))
    assert len(chunks) > 1

    assert [chunk.run.title for chunk in chunks] == [
        f"Abandoned cart · chunk {chunk.number} of {len(chunks)} "
        f"({chunk.item_count:,} row{'' if chunk.item_count == 1 else 's'})"
        for chunk in chunks
    ]
    assert {chunk.run.connection_name for chunk in chunks} == {"Altcraft sandbox"}


def test_a_single_row_launch_says_row_not_rows(team, trigger):
    launch = confirmed(team, trigger, 1)

    assert launch.chunks.get().run.title == "Abandoned cart · chunk 1 of 1 (1 row)"


def test_chunk_names_stay_after_the_trigger_is_renamed(team, trigger):
    launch = confirmed(team, trigger, 3)
    run = launch.chunks.get().run
    AltcraftTrigger.objects.filter(pk=trigger.pk).update(name="Cart reminder")

    client = team.client_for("auditor")
    assert (
        "Abandoned cart · chunk 1 of 1 (3 rows)"
        in client.get(reverse("run_list", args=["acme"])).content.decode()
    )
    page = client.get(reverse("run_detail", args=["acme", run.pk])).content.decode()
    assert f"Run #{run.pk}: Abandoned cart · chunk 1 of 1 (3 rows)" in page
    # The ids (trigger, launch, chunk) stay on the page as secondary text.
    assert f"trigger 8: launch {launch.pk} chunk 1" in page


def test_a_direct_call_is_named_by_the_registered_trigger_and_its_profiles(team, trigger):
    operation = operation_for("altcraft_start_batch")
    runs = [
        Run(
            operation="altcraft_start_batch",
            connection=trigger.connection,
            parameters={"trigger_id": trigger_id, "data": [{"email": "a@example.com"}] * count},
        )
        for trigger_id, count in ((8, 1), (99, 1200))
    ]

    assert operation.titles(runs) == ["Abandoned cart · 1 profile", "Trigger 99 · 1,200 profiles"]


def test_a_resent_chunk_keeps_the_chunk_name(team, trigger, connection, altcraft):
    launch = confirmed(team, trigger, 3)
    chunk = launch.chunks.get()
    Run.objects.filter(pk=chunk.run_id).update(state="failed", failure_class="rejected")

    chunk = services.chunk_retry(actor=Actor(user=team.operator.user), chunk=chunk)

    chunk.refresh_from_db()
    assert chunk.run.title == "Abandoned cart · chunk 1 of 1 (3 rows)"
