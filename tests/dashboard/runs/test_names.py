"""A run's readable title and connection name, frozen when it is requested (issue 22): how
run_submit stores them, what happens when an operation cannot name a run, and the migrations
that named the runs recorded before."""

from __future__ import annotations

import importlib
import logging

import pytest
from django.apps import apps

from dashboard.audit.trail import Actor
from dashboard.clock import utc_now
from dashboard.models import VendorConnection, VendorKind
from dashboard.runs import services
from dashboard.runs.models import Run
from dashboard.runs.operations import operation_for
from tests.factories import RunFactory, VendorConnectionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def calls(team):
    return VendorConnectionFactory(tenant=team.tenant, kind=VendorKind.TALKIFAI, name="Calls")


def submit(team, connection, *, key="k1", name="Win-back calls"):
    return services.run_submit(
        actor=Actor(user=team.marketer.user),
        tenant=team.tenant,
        connection=connection,
        operation="talkifai_start_batch_job",
        parameters={"batch_job_id": "job_1", "batch_job_name": name},
        idempotency_key=key,
        approval_required=True,
    )


def test_a_request_stores_its_title_and_connection_name(team, calls):
    run = submit(team, calls)
    VendorConnection.objects.filter(pk=calls.pk).update(name="Calls (EU)")

    run = Run.objects.get(pk=run.pk)
    assert (run.title, run.connection_name, run.name) == (
        "Win-back calls",
        "Calls",
        "Win-back calls",
    )


def test_an_operation_that_cannot_name_a_run_does_not_stop_the_request(
    team, calls, monkeypatch, caplog
):
    def broken(runs):
        raise LookupError("the names table is gone")

    monkeypatch.setattr(operation_for("talkifai_start_batch_job"), "titles", broken)
    with caplog.at_level(logging.ERROR):
        run = submit(team, calls)

    assert run.pk is not None
    assert run.title == "Start batch job job_1 (Win-back calls)"  # its parameters in a line
    assert "Could not name a talkifai_start_batch_job run" in caplog.text


def test_changed_parameters_rename_the_request(team, calls):
    run = submit(team, calls)

    services.run_change_parameters(
        actor=Actor(user=team.marketer.user),
        run=run,
        parameters={"batch_job_id": "job_2", "batch_job_name": "Spring calls"},
    )

    run.refresh_from_db()
    assert (run.title, run.connection_name) == ("Spring calls", "Calls")


def test_a_title_is_one_line_of_at_most_300_characters(team, calls, monkeypatch):
    monkeypatch.setattr(
        operation_for("talkifai_start_batch_job"),
        "titles",
        lambda runs: ["Win-back\n  calls " + "x" * 400 for run in runs],
    )
    run = submit(team, calls)

    assert run.title.startswith("Win-back calls x") and len(run.title) == 300


def test_a_run_recorded_without_a_title_reads_as_its_parameters(team):
    run = RunFactory(tenant=team.tenant, title="", parameters={"batch_job_id": "job_9"})

    assert run.name == "Start batch job job_9"


# -- the migrations that named the runs recorded before ---------------------------------------


def migration(name: str):
    return importlib.import_module(name)


def test_the_backfill_names_old_runs_from_todays_names(team, daily_connection, batch_job):
    from campaigns.event_generators.models import EventGenerator, Topic

    campaigns_connection = VendorConnectionFactory(
        tenant=team.tenant, kind=VendorKind.OPTIMOVE_CAMPAIGNS, name="Optimove"
    )
    generator = EventGenerator.objects.create(
        tenant=team.tenant,
        connection=campaigns_connection,
        external_id="00000000-ABCD-abcd-abcd-000000000000",
        name="Match Start Notifications",
    )
    Topic.objects.create(generator=generator, key="t-arsenal", name="Arsenal")
    old = {
        "event": RunFactory(
            tenant=team.tenant,
            connection=campaigns_connection,
            operation="optimove_run_event_generator",
            parameters={
                "event_generator_id": "00000000-abcd-abcd-abcd-000000000000",
                "topic_key": "t-arsenal",
                "context": {},
            },
        ),
        "unregistered": RunFactory(
            tenant=team.tenant,
            connection=campaigns_connection,
            operation="optimove_run_event_generator",
            parameters={"event_generator_id": "gone", "topic_key": "t-1", "context": {}},
        ),
        "daily": RunFactory(
            tenant=team.tenant,
            connection=daily_connection,
            operation="optimove_trigger_daily",
            parameters={"wait_time_for_validation_seconds": None},
            utc_date="2026-12-06",
        ),
        "job": RunFactory(
            tenant=team.tenant,
            connection=batch_job.connection,
            operation="talkifai_start_batch_job",
            parameters={"batch_job_id": batch_job.batch_job_id},
        ),
    }
    Run.objects.update(title="", connection_name="")

    migration("dashboard.migrations.0012_run_title_and_connection_name").name_connections(
        apps, None
    )
    migration("campaigns.migrations.0006_run_titles").name_runs(apps, None)
    migration("batchjobs.migrations.0002_run_titles").name_runs(apps, None)

    titles = {key: Run.objects.get(pk=run.pk).title for key, run in old.items()}
    assert titles == {
        "event": "Match Start Notifications → Arsenal",
        "unregistered": "Event generator gone → topic t-1",
        "daily": "Daily batch · 2026-12-06",
        "job": "Win-back calls",
    }
    assert Run.objects.get(pk=old["daily"].pk).connection_name == "Optimove batch"
    assert not Run.objects.filter(connection_name="").exists()


def test_the_backfill_names_old_altcraft_chunks_by_trigger_and_chunk(team, altcraft_trigger):
    from campaigns.altcraft_launches.models import AltcraftChunk, AltcraftLaunch

    launch = AltcraftLaunch.objects.create(
        tenant=team.tenant,
        trigger=altcraft_trigger,
        kind="start_batch",
        source_name="list.csv",
        source_sha256="0" * 64,
        source_bytes=1,
        body_limit_bytes=1_000_000,
        expires_at=utc_now(),
    )
    for number in (1, 2, 3):
        AltcraftChunk.objects.create(
            launch=launch,
            number=number,
            first_row=2,
            last_row=5001,
            item_count=5000,
            offset=0,
            length=1,
            body_bytes=1,
            sha256="0" * 64,
        )
    run = RunFactory(
        tenant=team.tenant,
        connection=altcraft_trigger.connection,
        operation="altcraft_start_batch",
        parameters={
            "trigger_id": 8,
            "chunk": {"launch": launch.pk, "number": 1, "items": 5000, "rows": "2-5001"},
        },
        title="",
    )

    migration("campaigns.migrations.0006_run_titles").name_runs(apps, None)

    run.refresh_from_db()
    assert run.title == "Abandoned cart · chunk 1 of 3 (5,000 rows)"
