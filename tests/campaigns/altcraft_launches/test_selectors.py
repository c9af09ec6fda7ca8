"""What a launch came to (launch_outcome), from what the Altcraft sandbox answered: every row
matched, some, none, some requests failed, all failed, and an import's task result."""

from __future__ import annotations

import pytest

from campaigns.altcraft_launches import selectors, services
from dashboard.runs.models import Run
from dashboard.runs.selectors import Outcome
from dashboard.runs.services import run_poll
from dashboard.vendors.sandbox import Fault
from tests.campaigns.altcraft_launches.conftest import actor_of, csv_bytes, prepare, send_all

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]


def sent(team, trigger, values: list[str], **parameters):
    launch = prepare(team.marketer, trigger, csv_bytes("email", values), **parameters)
    launch = services.launch_confirm(
        actor=actor_of(team.marketer), launch=launch, sha256_seen=launch.source_sha256
    )
    send_all(launch)
    return launch


def small_limit(connection, altcraft, limit: int) -> None:
    connection.options = {"body_limit_bytes": limit}
    connection.save()
    altcraft.control("set_body_limit", {"bytes": limit})


def test_every_row_matched_is_sent_in_good_tone_with_thousands_separators(
    team, trigger, altcraft
) -> None:
    altcraft.control("set_match_every_item", {"enabled": True})
    launch = sent(team, trigger, [f"user{index}@example.com" for index in range(1200)])

    assert selectors.launch_outcome(launch) == Outcome(
        "Sent", "good", "sent; 1,200 of 1,200 matched a profile"
    )


def test_a_partial_match_is_sent_with_its_numbers_as_a_warning(team, trigger) -> None:
    # The sandbox holds example1@example.com, nobody else.
    launch = sent(team, trigger, ["example1@example.com", "nobody@example.com"])

    assert selectors.launch_outcome(launch) == Outcome(
        "Sent", "warn", "sent; 1 of 2 matched a profile"
    )


def test_no_profile_matched_is_not_a_success(team, trigger) -> None:
    launch = sent(team, trigger, ["nobody@example.com", "nobody.else@example.com"])

    outcome = selectors.launch_outcome(launch)

    assert outcome == Outcome("Sent", "warn", "sent; 0 of 2 matched a profile")
    assert "Succeeded" not in outcome.text and "Done" not in outcome.text


def test_some_requests_failed_is_partly_failed(team, trigger, connection, altcraft) -> None:
    from dashboard.runs.services import run_send

    small_limit(connection, altcraft, 3000)
    values = [f"user{index:06d}@example.com" for index in range(200)]
    launch = prepare(team.marketer, trigger, csv_bytes("email", values))
    launch = services.launch_confirm(
        actor=actor_of(team.marketer), launch=launch, sha256_seen=launch.source_sha256
    )
    chunks = list(launch.chunks.order_by("number"))
    assert len(chunks) >= 3
    altcraft.inject_fault("start_batch", Fault.SERVER_ERROR, status=400)
    for chunk in chunks:
        run_send(run_id=chunk.run_id)

    outcome = selectors.launch_outcome(launch)

    assert outcome.word == "Partly failed" and outcome.tone == "warn"
    assert outcome.detail.startswith(f"1 of {len(chunks)} requests failed; sent; 0 of ")


def test_every_request_failed_is_failed_with_the_vendors_reason(team, trigger, altcraft) -> None:
    altcraft.inject_fault("start_batch", Fault.SERVER_ERROR, status=400)
    launch = sent(team, trigger, ["example1@example.com"])
    [chunk] = launch.chunks.select_related("run")

    outcome = selectors.launch_outcome(launch)

    assert chunk.run.state == "failed" and chunk.run.failure_message
    assert outcome == Outcome("Failed", "bad", chunk.run.failure_message)


def test_an_import_says_how_many_rows_its_task_imported(team, trigger, sandboxes) -> None:
    launch = prepare(
        team.marketer,
        trigger,
        b"Email\nann@example.com\nbob@example.com\n",
        kind="import",
        mapping={"columns": {"Email": {"to": "field", "name": "email"}}},
    )
    launch = services.launch_confirm(
        actor=actor_of(team.marketer), launch=launch, sha256_seen=launch.source_sha256
    )
    [chunk] = launch.chunks.all()
    send_all(launch)
    sandboxes.clock.advance(10)
    Run.objects.filter(pk=chunk.run_id).update(next_poll_at=None)  # due now
    assert run_poll(run_id=chunk.run_id) == "completed"

    assert selectors.launch_outcome(launch) == Outcome(
        "Imported", "good", "2 of 2 rows imported and launched"
    )


def test_a_task_result_without_a_profile_list_is_not_reported_as_zero(team, trigger) -> None:
    launch = prepare(
        team.marketer,
        trigger,
        b"Email\nann@example.com\n",
        kind="import",
        mapping={"columns": {"Email": {"to": "field", "name": "email"}}},
    )
    launch = services.launch_confirm(
        actor=actor_of(team.marketer), launch=launch, sha256_seen=launch.source_sha256
    )
    [chunk] = launch.chunks.all()
    # What the operation stores for the docs' XML-shaped result (captured, errors, status).
    Run.objects.filter(pk=chunk.run_id).update(
        state="succeeded", result={"profile_count": None, "captured": 0, "error_count": 0}
    )

    assert selectors.launch_outcome(launch) == Outcome(
        "Imported", "warn", "sent 1 row; Altcraft did not report how many matched a profile"
    )


def test_a_chunk_that_reached_nobody_says_so_beside_its_run_state(team, trigger) -> None:
    from django.template.loader import render_to_string

    launch = sent(team, trigger, ["nobody@example.com"])
    run = launch.chunks.get().run

    badge = render_to_string("runs/_state_badge.html#state_badge", {"run": run})

    assert badge == (
        '<span class="badge state succeeded">Succeeded</span> '
        '<span class="badge warn">reached nobody</span>'
    )
