"""Profile import + launch: a column mapping (remembered per trigger), each item's matching value
inside its `data`, chunks that each become a task polled to its result."""

from __future__ import annotations

import json

import pytest

from campaigns.altcraft_launches import services
from campaigns.altcraft_launches.models import LaunchState
from dashboard.runs.models import Run
from dashboard.runs.services import run_poll, run_send
from dashboard.runs.states import RunState
from tests.campaigns.altcraft_launches.conftest import actor_of, prepare

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]

MAPPING = {
    "columns": {
        "Email": {"to": "field", "name": "email"},
        "First name": {"to": "field", "name": "_fname"},
        "Mobile": {"to": "phone_subscription", "resource_id": 20},
        "Notes": {"to": "ignore"},
    }
}
FILE = (
    b"Email,First name,Mobile,Notes\n"
    b"ann@example.com,Ann,+7 900 000 11 22,vip\n"
    b"bob@example.com,Bob,,\n"
    b"bad-address,Carl,,\n"
    b"ANN@example.com,Ann again,,\n"
)


def test_an_import_maps_columns_and_polls_each_task_to_its_result(
    team, trigger, altcraft, sandboxes
) -> None:
    launch = prepare(
        team.marketer,
        trigger,
        FILE,
        kind="import",
        mapping=MAPPING,
        skip_invalid_subscriptions=True,
        detect_geo=False,
        timeout={"days": 0, "hours": 1, "minutes": 0},
    )
    assert launch.state == LaunchState.PREVIEWED, launch.problem
    assert (launch.rows_valid, launch.rows_invalid, launch.rows_duplicate) == (2, 1, 1)
    assert launch.invalid_samples == [
        {"row": 4, "reason": "Email: not an email address: 'bad-address'"}
    ]
    trigger.refresh_from_db()
    assert trigger.import_mapping == MAPPING

    launch = services.launch_confirm(
        actor=actor_of(team.marketer), launch=launch, sha256_seen=launch.source_sha256
    )
    [chunk] = launch.chunks.all()
    assert run_send(run_id=chunk.run_id) == "accepted"
    [received] = altcraft.received_on("import_and_start_batch_task")
    body = json.loads(received.body)
    assert body["data"] == [
        {
            "data": {
                "email": "ann@example.com",
                "_fname": "Ann",
                "subscriptions": [{"channel": "phone", "phone": "+79000001122", "resource_id": 20}],
            }
        },
        {"data": {"email": "bob@example.com", "_fname": "Bob"}},
    ]
    assert body["skip_invalid_subscriptions"] is True and body["timeout"]["hours"] == 1

    sandboxes.clock.advance(10)
    Run.objects.filter(pk=chunk.run_id).update(next_poll_at=None)  # due now
    assert run_poll(run_id=chunk.run_id) == "completed"
    run = Run.objects.get(pk=chunk.run_id)
    assert run.state == RunState.SUCCEEDED
    assert run.progress == 100
    assert run.result["profile_count"] == 2


@pytest.mark.parametrize(
    ("mapping", "problem"),
    [
        ({"columns": {"Email": {"to": "field", "name": "email"}}}, "does not cover: 'First name'"),
        (
            {"columns": {**MAPPING["columns"], "Email": {"to": "ignore"}}},
            "Matching 'email' needs a column mapped to the profile field email",
        ),
    ],
)
def test_a_mapping_that_misses_a_column_or_the_matching_value_is_refused(
    team, trigger, altcraft, mapping, problem
) -> None:
    launch = prepare(team.marketer, trigger, FILE, kind="import", mapping=mapping)

    assert launch.state == LaunchState.DISCARDED
    assert problem in launch.problem
    assert altcraft.received == []


def test_a_task_altcraft_no_longer_knows_goes_before_a_person_at_once(
    team, trigger, altcraft, sandboxes
) -> None:
    """Altcraft's "Task not found" on a status read will not change in the 24 h poll window."""
    launch = prepare(team.marketer, trigger, FILE, kind="import", mapping=MAPPING)
    launch = services.launch_confirm(
        actor=actor_of(team.marketer), launch=launch, sha256_seen=launch.source_sha256
    )
    [chunk] = launch.chunks.all()
    assert run_send(run_id=chunk.run_id) == "accepted"
    Run.objects.filter(pk=chunk.run_id).update(vendor_reference="999999", next_poll_at=None)

    assert run_poll(run_id=chunk.run_id).startswith("poll refused: ")

    run = Run.objects.get(pk=chunk.run_id)
    assert run.state == RunState.OUTCOME_UNKNOWN and run.needs_person
    assert run.failure_class == "rejected"
    assert "Task not found" in run.failure_message
    assert "launched nothing" not in run.failure_message  # a send's advice, wrong here
    Run.objects.filter(pk=chunk.run_id).update(next_poll_at=None)
    assert run_poll(run_id=chunk.run_id) == "not accepted"
    assert run.attempts.filter(purpose="poll").count() == 1


def test_a_mapping_whose_target_is_not_an_object_is_refused_naming_the_column() -> None:
    # A hand-written --mapping-file may say {"Email": "email"}: a refusal, not a crash.
    from campaigns.altcraft_launches import reading

    with pytest.raises(reading.MappingRejected) as refused:
        reading.check_mapping(
            {"columns": {"Email": "email"}}, ["Email"], matching="email", field_name=None
        )

    assert (refused.value.code, refused.value.column) == ("bad_target", "Email")
