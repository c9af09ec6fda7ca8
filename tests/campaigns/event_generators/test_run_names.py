"""Event generator runs are named "<generator> → <topic>" and the connection they went through,
as both were when the trigger was requested: renaming the generator, a topic or the connection
afterwards changes nothing in the run list, the run pages, the audit page, the CSV export or the
API (issue 22, readable names)."""

from __future__ import annotations

import csv
import io
import uuid

import pytest
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from campaigns.event_generators import services
from dashboard.audit.trail import Actor
from dashboard.runs.models import Run
from dashboard.runs.operations import operation_for
from dashboard.tenancy import services as tenancy_services
from tests.campaigns.conftest import ARSENAL, CHELSEA, GOOD_CONTEXT, MATCH_SCHEMA

pytestmark = pytest.mark.django_db

# How the run list's secondary text begins for a run of the generator: its ids.
MATCH_START_ID_PREFIX = "Event generator 00000000-abcd"


def trigger(team, generator, key: str, topics=(ARSENAL, CHELSEA)):
    return services.campaign_trigger(
        actor=Actor(user=team.marketer.user),
        generator=generator,
        topic_keys=list(topics),
        context={**GOOD_CONTEXT, "match_id": key},
        idempotency_key=key,
    )


def rename_everything(team, generator, connection) -> None:
    """The generator, its topics and its connection each get another name."""
    services.generator_update(
        actor=Actor(user=team.admin.user),
        generator=generator,
        name="Kick-off alerts",
        description="",
        topics=[(ARSENAL, "The Gunners"), (CHELSEA, "The Blues")],
        schema=MATCH_SCHEMA,
    )
    tenancy_services.connection_update(
        actor=Actor(user=team.admin.user),
        connection=connection,
        name="Optimove (old brand)",
        base_url=connection.base_url,
        options=connection.options,
        is_active=True,
    )


def csv_rows(response) -> list[dict[str, str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def test_each_run_of_a_trigger_is_named_by_generator_and_topic(
    team, generator, campaigns_connection
):
    group = trigger(team, generator, "kickoff")

    runs = Run.objects.filter(campaign_run__group=group).order_by("pk")
    assert [run.title for run in runs] == [
        "Match Start Notifications → Arsenal",
        "Match Start Notifications → Chelsea",
    ]
    assert {run.connection_name for run in runs} == {"Optimove"}


def test_a_topic_the_generator_no_longer_lists_is_named_by_its_key(team, generator):
    run = Run(
        operation="optimove_run_event_generator",
        connection=generator.connection,
        parameters={"event_generator_id": generator.external_id, "topic_key": "nfl-week-1"},
    )
    assert operation_for(run.operation).titles([run]) == [
        "Match Start Notifications → topic nfl-week-1"
    ]


def test_names_stay_as_they_were_after_generator_topic_and_connection_are_renamed(
    team, generator, campaigns_connection, make_token
):
    group = trigger(team, generator, "kickoff")
    run = Run.objects.filter(campaign_run__group=group).order_by("pk").first()
    rename_everything(team, generator, campaigns_connection)
    later = Run.objects.filter(campaign_run__group=trigger(team, generator, "later")).order_by(
        "pk"
    )[0]

    client = team.client_for("auditor")
    run_list = client.get(reverse("run_list", args=["acme"])).content.decode()
    assert "Match Start Notifications → Arsenal" in run_list
    assert "Kick-off alerts → The Gunners" in run_list  # the new trigger, by the new names
    assert "<td>Optimove</td>" in run_list and "<td>Optimove (old brand)</td>" in run_list
    assert MATCH_START_ID_PREFIX in run_list  # the ids stay, as secondary text

    page = client.get(reverse("run_detail", args=["acme", run.pk])).content.decode()
    assert f"Run #{run.pk}: Match Start Notifications → Arsenal" in page
    assert "now named Optimove (old brand)" in page
    campaign_page = client.get(reverse("campaign_run_detail", args=["acme", run.pk]))
    assert "<h1>Match Start Notifications → Arsenal</h1>" in campaign_page.content.decode()

    audit = client.get(reverse("audit_list", args=["acme"]), {"action": "run."}).content.decode()
    assert "Match Start Notifications → Arsenal</a>" in audit
    assert f"run {run.pk}</small>" in audit

    rows = {row["run"]: row for row in csv_rows(client.get(reverse("run_export", args=["acme"])))}
    assert rows[str(run.pk)]["title"] == "Match Start Notifications → Arsenal"
    assert rows[str(run.pk)]["connection"] == "Optimove"
    assert rows[str(run.pk)]["connection_id"] == str(campaigns_connection.pk)
    assert ARSENAL in rows[str(run.pk)]["parameters"]  # generator id and topic key as before
    assert rows[str(later.pk)]["title"] == "Kick-off alerts → The Gunners"

    _, api = make_token("auditor")
    body = api.get(f"runs/{run.pk}").json()
    assert body["title"] == "Match Start Notifications → Arsenal"
    assert body["connection"] == "Optimove"
    assert body["connection_id"] == campaigns_connection.pk
    assert body["parameters"]["topic_key"] == ARSENAL
    listed = {item["id"]: item for item in api.get("runs").json()["items"]}
    assert listed[run.pk]["title"] == "Match Start Notifications → Arsenal"


def test_naming_a_trigger_group_costs_the_same_queries_for_2_topics_as_for_8(team, make_generator):
    topics = [(str(uuid.uuid4()), f"Club {n}") for n in range(8)]
    generator = make_generator(topics=topics)
    trigger(team, generator, "warm-up", topics=[topics[0][0]])  # the tenant's settings row

    def queries(key: str, count: int) -> int:
        with CaptureQueriesContext(db_connection) as captured:
            trigger(team, generator, key, topics=[key for key, _ in topics[:count]])
        return len(captured.captured_queries)

    assert queries("two", 2) == queries("eight", 8)
    assert sorted(
        Run.objects.filter(campaign_run__group__idempotency_key="eight").values_list(
            "title", flat=True
        )
    ) == sorted(f"Match Start Notifications → Club {n}" for n in range(8))
