"""Bulk launches through the run engine against the Altcraft sandbox: chunks under the limit,
every valid row sent exactly once, retries that resend only what failed, four eyes, expiry."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.test import TestCase
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigns.altcraft_launches import services, storage
from campaigns.altcraft_launches.models import LaunchState
from dashboard.runs.services import RunActionError
from dashboard.runs.states import RunState
from dashboard.vendors.sandbox import Fault
from tests.campaigns.altcraft_launches.conftest import (
    actor_of,
    csv_bytes,
    prepare,
    received_values,
    send_all,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]


def small_limit(connection, altcraft, limit: int) -> None:
    connection.options = {"body_limit_bytes": limit}
    connection.save()
    altcraft.control("set_body_limit", {"bytes": limit})


def emails(count: int, width: int = 0) -> list[str]:
    return [f"user{index:06d}{'x' * width}@example.com" for index in range(count)]


def confirm(membership, launch):
    return services.launch_confirm(
        actor=actor_of(membership), launch=launch, sha256_seen=launch.source_sha256
    )


def test_a_confirmed_launch_sends_each_chunk_once_under_the_limit(
    team, trigger, connection, altcraft
) -> None:
    small_limit(connection, altcraft, 4000)
    values = emails(300)
    launch = prepare(team.marketer, trigger, csv_bytes("email", values), content={"page": "x"})
    assert launch.state == LaunchState.PREVIEWED
    assert altcraft.received == []  # the preview sends nothing

    launch = confirm(team.marketer, launch)
    outcomes = send_all(launch)

    assert launch.state == LaunchState.SENDING
    assert set(outcomes) == {"succeeded"}
    requests = altcraft.received_on("start_batch")
    assert len(requests) == launch.chunks.count() > 1
    assert all(len(r.body.encode()) <= 4000 for r in requests)
    assert sorted(received_values(altcraft)) == sorted(values)
    body = json.loads(requests[0].body)
    assert body["content"] == {"page": "x"} and body["trigger_id"] == 8
    # A double click on confirm makes no second run, and a redelivered task sends nothing.
    again = confirm(team.marketer, launch)
    assert [c.run_id for c in again.chunks.all()] == [c.run_id for c in launch.chunks.all()]
    assert all(outcome.startswith("skipped") for outcome in send_all(again))
    assert len(altcraft.received_on("start_batch")) == len(requests)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    widths=st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=60),
    limit=st.integers(min_value=700, max_value=3000),
)
def test_chunking_property_every_request_fits_and_every_row_goes_once(
    team, trigger, connection, altcraft, widths: list[int], limit: int
) -> None:
    altcraft.reset()
    small_limit(connection, altcraft, limit)
    # Custom matching: any row width is a valid value (an email stops at 254 characters).
    values = [f"v{index}-{'y' * width}" for index, width in enumerate(widths)]

    launch = prepare(
        team.marketer,
        trigger,
        csv_bytes("Custom_ID", values),
        matching="custom",
        field_name="Custom_ID",
    )
    if launch.state == LaunchState.DISCARDED:
        # Only a row too large for any request may refuse the file, and then nothing is sent.
        assert "alone makes a request" in launch.problem
        assert altcraft.received == []
        return
    launch = confirm(team.marketer, launch)
    send_all(launch)

    requests = altcraft.received_on("start_batch")
    assert all(len(r.body.encode()) <= limit for r in requests)
    assert sorted(received_values(altcraft)) == sorted(values)
    assert len(requests) == launch.chunks.count()
    assert sum(c.body_bytes for c in launch.chunks.all()) == sum(
        len(r.body.encode()) for r in requests
    )


def test_a_failed_chunk_is_retried_alone_and_no_row_goes_twice(
    team, trigger, connection, altcraft
) -> None:
    small_limit(connection, altcraft, 3000)
    values = emails(200)
    launch = confirm(team.marketer, prepare(team.marketer, trigger, csv_bytes("email", values)))
    chunks = list(launch.chunks.order_by("number"))
    assert len(chunks) >= 3
    from dashboard.runs.services import run_send

    run_send(run_id=chunks[0].run_id)
    # The middle chunk is refused (HTTP 4xx: the vendor did nothing): the run fails.
    altcraft.inject_fault("start_batch", Fault.SERVER_ERROR, status=400)
    run_send(run_id=chunks[1].run_id)
    for chunk in chunks[2:]:
        run_send(run_id=chunk.run_id)
    chunks[1].refresh_from_db()
    assert chunks[1].run.state == RunState.FAILED

    with pytest.raises(RunActionError, match="only a failed chunk"):
        services.chunk_retry(actor=actor_of(team.marketer), chunk=chunks[0])
    retried = services.launch_retry_failed(actor=actor_of(team.marketer), launch=launch)
    assert retried == 1
    chunks[1].refresh_from_db()
    assert chunks[1].retries == 1
    assert run_send(run_id=chunks[1].run_id) == "succeeded"

    assert sorted(received_values(altcraft)) == sorted(values)
    assert len(received_values(altcraft)) == len(set(received_values(altcraft)))


def test_an_outcome_unknown_chunk_goes_to_a_person_and_is_never_retried_here(
    team, trigger, altcraft
) -> None:
    launch = confirm(team.marketer, prepare(team.marketer, trigger, csv_bytes("email", emails(3))))
    [chunk] = launch.chunks.all()
    altcraft.inject_fault("start_batch", Fault.DROP_AFTER_PROCESSING)
    from dashboard.runs.services import run_send

    assert run_send(run_id=chunk.run_id).startswith("outcome unknown")
    chunk.refresh_from_db()
    assert chunk.run.state == RunState.OUTCOME_UNKNOWN

    with pytest.raises(RunActionError, match="only a failed chunk"):
        services.chunk_retry(actor=actor_of(team.operator), chunk=chunk)
    assert len(altcraft.received_on("start_batch")) == 1


def test_four_eyes_an_operator_approves_the_exact_file(team, trigger, altcraft) -> None:
    services.altcraft_settings_update(
        actor=actor_of(team.admin), tenant=team.tenant, approval_required=True, retention_hours=24
    )
    launch = prepare(team.operator, trigger, csv_bytes("email", emails(5)))
    launch = confirm(team.operator, launch)
    assert launch.state == LaunchState.AWAITING_APPROVAL
    assert launch.chunks.filter(run__isnull=False).count() == 0

    with pytest.raises(RunActionError, match="Four eyes"):
        services.launch_approve(
            actor=actor_of(team.operator),
            membership=team.operator,
            launch=launch,
            sha256_seen=launch.source_sha256,
        )
    with pytest.raises(RunActionError, match="SHA-256"):
        services.launch_approve(
            actor=actor_of(team.second_operator),
            membership=team.second_operator,
            launch=launch,
            sha256_seen="0" * 64,
        )
    launch = services.launch_approve(
        actor=actor_of(team.second_operator),
        membership=team.second_operator,
        launch=launch,
        sha256_seen=launch.source_sha256,
    )
    assert launch.state == LaunchState.SENDING
    assert send_all(launch) == ["succeeded"]


def test_a_big_list_policy_needs_two_distinct_operators_of_the_exact_file(
    team, trigger, altcraft
) -> None:
    from dashboard.approval_policies.services import policy_create
    from dashboard.models import AuditEvent

    policy_create(
        actor=actor_of(team.admin),
        tenant=team.tenant,
        data={
            "name": "Big lists",
            "operation": "altcraft_start_batch",
            "recipients_above": "4",
            "approvals_needed": "2",
            "valid_minutes": "30",
        },
    )
    small = confirm(team.marketer, prepare(team.marketer, trigger, csv_bytes("email", emails(4))))
    assert small.state == LaunchState.SENDING  # 4 recipients: not above 4
    launch = confirm(team.marketer, prepare(team.marketer, trigger, csv_bytes("email", emails(5))))
    assert launch.state == LaunchState.AWAITING_APPROVAL
    assert launch.approvals_needed == 2
    assert launch.approval_reasons == [
        "Altcraft: bulk trigger launch: 5 recipients, above 4; needs 2 approvals "
        "(policy 'Big lists')"
    ]

    def approve(membership):
        return services.launch_approve(
            actor=actor_of(membership),
            membership=membership,
            launch=launch,
            sha256_seen=launch.source_sha256,
        )

    launch = approve(team.operator)
    assert launch.state == LaunchState.AWAITING_APPROVAL
    assert services.launch_approved_message(launch).startswith("Approved (1 of 2)")
    assert launch.chunks.filter(run__isnull=False).count() == 0
    with pytest.raises(RunActionError, match="already approved"):
        approve(team.operator)
    launch = approve(team.second_operator)
    assert launch.state == LaunchState.SENDING
    assert AuditEvent.objects.filter(action="altcraft.launch_approval_recorded").count() == 1
    approved = AuditEvent.objects.get(action="altcraft.launch_approved")
    assert approved.summary["approvals"] == 2
    # The launch was judged as a whole: its chunks' runs do not wait again.
    assert {chunk.run.state for chunk in launch.chunks.all()} == {RunState.QUEUED}


def test_uploads_are_encrypted_at_rest_and_expire(team, trigger, upload_dir) -> None:
    launch = prepare(team.marketer, trigger, csv_bytes("email", ["secret.person@example.com"]))
    for path in (launch.upload_path, launch.chunks_path):
        assert b"secret.person" not in storage.absolute(path).read_bytes()

    launch.expires_at = launch.expires_at - timedelta(days=30)
    launch.save()
    assert services.launches_expire() == 1
    launch.refresh_from_db()
    assert launch.state == LaunchState.DISCARDED
    assert list(upload_dir.iterdir()) == []


def test_a_retry_after_expiry_is_refused(team, trigger, altcraft) -> None:
    launch = confirm(team.marketer, prepare(team.marketer, trigger, csv_bytes("email", emails(2))))
    [chunk] = launch.chunks.all()
    altcraft.inject_fault("start_batch", Fault.SERVER_ERROR, status=400)
    send_all(launch)
    launch.expires_at = launch.expires_at - timedelta(days=30)
    launch.save()
    services.launches_expire()

    with pytest.raises(RunActionError, match="expired"):
        services.chunk_retry(actor=actor_of(team.marketer), chunk=chunk)


def test_the_same_idempotency_key_makes_one_launch(team, trigger) -> None:
    key = uuid.uuid4().hex
    first = services.launch_create(
        actor=actor_of(team.marketer),
        trigger=trigger,
        kind="start_batch",
        upload=services.upload_store(pieces=[b"email\na@example.com\n"]),
        source_name="a.csv",
        parameters={},
        idempotency_key=key,
    )
    second = services.launch_create(
        actor=actor_of(team.marketer),
        trigger=trigger,
        kind="start_batch",
        upload=services.upload_store(pieces=[b"email\na@example.com\n"]),
        source_name="a.csv",
        parameters={},
        idempotency_key=key,
    )
    assert first.pk == second.pk


def test_attachments_go_as_data_uris_and_runs_record_only_their_names(
    team, trigger, altcraft
) -> None:
    attach = [services.attachment(name="terms.txt", content=b"hello", content_type="text/plain")]
    launch = prepare(
        team.marketer,
        trigger,
        csv_bytes("email", ["a@example.com"]),
        attach=attach,
        custom_data={"crm": 1},
        skip_triggers=True,
    )
    launch = confirm(team.marketer, launch)
    [chunk] = launch.chunks.select_related("run")
    assert chunk.run.parameters["attach_files"] == [{"name": "terms.txt", "bytes": 31}]
    assert "attach" not in chunk.run.parameters

    send_all(launch)

    body = json.loads(altcraft.received_on("start_batch")[0].body)
    assert body["attach"] == [{"data": "data:text/plain;base64,aGVsbG8=", "name": "terms.txt"}]
    assert body["custom_data"] == {"crm": 1} and body["skip_triggers"] is True


def test_files_no_launch_refers_to_are_deleted_after_a_day(team, trigger, upload_dir) -> None:
    import os
    import time

    kept = prepare(team.marketer, trigger, csv_bytes("email", ["a@example.com"]))
    orphan = services.upload_store(pieces=[b"email\nb@example.com\n"])
    fresh_orphan = services.upload_store(pieces=[b"email\nc@example.com\n"])
    two_days_ago = time.time() - 2 * 86400
    for path in (orphan.path, kept.upload_path):
        os.utime(storage.absolute(path), (two_days_ago, two_days_ago))

    assert services.launches_expire() == 1

    remaining = {path.name for path in upload_dir.iterdir()}
    assert remaining == {kept.upload_path, kept.chunks_path, fresh_orphan.path}


def another_marketer(team):
    from dashboard.models import Role
    from tests.factories import MembershipFactory, UserFactory

    return MembershipFactory(
        tenant=team.tenant, user=UserFactory(username="max"), role=Role.MARKETER
    )


def test_only_the_uploader_or_an_operator_resends_or_discards_a_launch(
    team, trigger, altcraft
) -> None:
    launch = confirm(team.marketer, prepare(team.marketer, trigger, csv_bytes("email", emails(2))))
    [chunk] = launch.chunks.all()
    altcraft.inject_fault("start_batch", Fault.SERVER_ERROR, status=400)
    send_all(launch)
    other = actor_of(another_marketer(team))

    with pytest.raises(PermissionDenied, match="Only the uploader or an operator"):
        services.launch_retry_failed(actor=other, launch=launch)
    with pytest.raises(PermissionDenied, match="Only the uploader or an operator"):
        services.chunk_retry(actor=other, chunk=chunk)
    chunk.refresh_from_db()
    assert chunk.retries == 0 and len(altcraft.received_on("start_batch")) == 1
    assert services.launch_retry_failed(actor=actor_of(team.operator), launch=launch) == 1

    unsent = prepare(team.marketer, trigger, csv_bytes("email", emails(3)))
    with pytest.raises(PermissionDenied, match="Only the uploader or an operator"):
        services.launch_discard(actor=other, launch=unsent)
    unsent.refresh_from_db()
    assert unsent.state == LaunchState.PREVIEWED
    assert services.launch_discard(actor=actor_of(team.operator), launch=unsent).state == (
        LaunchState.DISCARDED
    )


def test_nobody_but_the_uploader_confirms_so_an_operator_cannot_confirm_and_approve(
    team, trigger, altcraft
) -> None:
    services.altcraft_settings_update(
        actor=actor_of(team.admin), tenant=team.tenant, approval_required=True, retention_hours=24
    )
    launch = prepare(team.marketer, trigger, csv_bytes("email", emails(5)))
    with pytest.raises(PermissionDenied, match=r"Only the uploader \(mia\) can confirm"):
        confirm(team.operator, launch)
    launch.refresh_from_db()
    assert launch.state == LaunchState.PREVIEWED and not launch.confirmed_by_label
    assert altcraft.received == []


def test_a_reading_that_fails_on_our_side_does_not_stay_reading(
    team, trigger, monkeypatch, upload_dir
) -> None:
    import uuid

    from campaigns.altcraft_launches import reading, services
    from campaigns.altcraft_launches.models import LaunchState
    from tests.campaigns.altcraft_launches.conftest import actor_of

    launch = services.launch_create(
        actor=actor_of(team.marketer),
        trigger=trigger,
        kind="start_batch",
        upload=services.upload_store(pieces=[b"email\na@example.com\n"]),
        source_name="list.csv",
        parameters={"matching": "email"},
        idempotency_key=uuid.uuid4().hex,
    )

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(reading, "prepare_launch_rows", broken)
    with pytest.raises(RuntimeError):
        services.launch_prepare_queued(
            launch_id=launch.pk, user_id=team.marketer.user.pk, ip_address=None
        )

    launch.refresh_from_db()
    assert launch.state == LaunchState.DISCARDED and not launch.is_reading
    assert launch.problem.startswith("The file could not be read (an error on our side")
    assert list(upload_dir.iterdir()) == []  # neither the upload nor a half-written chunk file


def _queued_start_batch(team, trigger, rows: int = 3):
    """A start_batch launch whose reading the uploader queued; the message it sent on commit
    never reached the broker (Redis was down at that moment)."""
    from kombu.exceptions import OperationalError

    from campaigns.altcraft_launches import tasks

    launch = services.launch_create(
        actor=actor_of(team.marketer),
        trigger=trigger,
        kind="start_batch",
        upload=services.upload_store(pieces=[csv_bytes("email", emails(rows))]),
        source_name="list.csv",
        parameters={"matching": "email"},
        idempotency_key=uuid.uuid4().hex,
    )

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(tasks.prepare_launch, "apply_async", broker_down)
        with TestCase.captureOnCommitCallbacks(execute=True):
            services.launch_prepare_queue(
                actor=actor_of(team.marketer), launch=launch, column="email"
            )
    launch.refresh_from_db()
    assert launch.is_reading and launch.reading_claimed_at is None
    return launch


def _waited(launch, minutes: int) -> None:
    """Move the launch's upload, queueing and any claim `minutes` into the past."""
    from django.db.models import F

    from campaigns.altcraft_launches.models import AltcraftLaunch

    earlier = timedelta(minutes=minutes)
    AltcraftLaunch.objects.filter(pk=launch.pk).update(
        created_at=F("created_at") - earlier,
        reading_queued_at=F("reading_queued_at") - earlier,
        reading_claimed_at=F("reading_claimed_at") - earlier,
    )


def test_a_reading_whose_message_was_lost_is_queued_again_by_housekeeping(
    team, trigger, read_by_worker
) -> None:
    from campaigns.altcraft_launches import tasks
    from dashboard.models import AuditEvent

    launch = _queued_start_batch(team, trigger)
    with read_by_worker():
        tasks.expire_uploads()  # queued just now: its message may still be on its way
    launch.refresh_from_db()
    assert launch.is_reading

    _waited(launch, minutes=6)
    with read_by_worker():
        tasks.expire_uploads()
    launch.refresh_from_db()
    assert launch.state == LaunchState.PREVIEWED and launch.rows_valid == 3
    requeued = AuditEvent.objects.get(action="altcraft.launch_reading_requeued")
    assert requeued.object_id == str(launch.pk) and requeued.actor_id is None
    previewed = AuditEvent.objects.get(action="altcraft.launch_previewed")
    assert previewed.actor_id == team.marketer.user.pk  # read as its uploader, as queued


def test_a_reading_whose_worker_died_is_taken_over_after_a_while(
    team, trigger, read_by_worker
) -> None:
    from campaigns.altcraft_launches import tasks
    from campaigns.altcraft_launches.models import AltcraftLaunch

    launch = _queued_start_batch(team, trigger)
    # A worker claimed it and was killed before it reported any progress.
    AltcraftLaunch.objects.filter(pk=launch.pk).update(reading_claimed_at=launch.reading_queued_at)
    _waited(launch, minutes=6)
    with read_by_worker():
        tasks.expire_uploads()
    launch.refresh_from_db()
    assert launch.state == LaunchState.PREVIEWED and launch.rows_valid == 3


def test_a_launch_being_read_is_neither_queued_again_nor_read_twice(
    team, trigger, monkeypatch
) -> None:
    """While a worker reads the launch (long after it was queued), housekeeping does not queue
    it again, and a second delivery of its message does not read it too."""
    from campaigns.altcraft_launches import reading, tasks

    launch = _queued_start_batch(team, trigger)
    _waited(launch, minutes=60)  # the queue was long, the reading has just begun
    enqueued = []
    monkeypatch.setattr(
        tasks.prepare_launch, "apply_async", lambda *args, **kwargs: enqueued.append(kwargs)
    )
    during = {}
    original_rows = reading.prepare_launch_rows

    def rows_while_other_things_happen(*args, **kwargs):
        if not during:  # the first reading only (a second one would read rows too)
            during["housekeeping"] = services.launches_reading_resume()
            during["second delivery"] = services.launch_prepare_queued(
                launch_id=launch.pk, user_id=team.marketer.user.pk, ip_address=None
            )
        return original_rows(*args, **kwargs)

    monkeypatch.setattr(reading, "prepare_launch_rows", rows_while_other_things_happen)
    state = services.launch_prepare_queued(
        launch_id=launch.pk, user_id=team.marketer.user.pk, ip_address=None
    )
    assert state == LaunchState.PREVIEWED
    assert during == {"housekeeping": 0, "second delivery": "skipped"}
    assert enqueued == []
    launch.refresh_from_db()
    assert launch.rows_valid == 3 and launch.chunks.count() == 1


def list_launch(membership, trigger, text: str, **options):
    return services.launch_from_list(
        actor=actor_of(membership),
        trigger=trigger,
        kind="start_batch",
        text=text,
        matching="email",
        field_name=None,
        source_name="API recipients",
        parameters={"matching": "email", "content": {"page": "x"}},
        idempotency_key=uuid.uuid4().hex,
        **options,
    )


def stored_files(upload_dir) -> list:
    return sorted(path.name for path in upload_dir.rglob("*") if path.is_file())


def test_launch_from_list_read_now_and_confirmed_sends_each_recipient(
    team, trigger, altcraft
) -> None:
    launch = list_launch(team.marketer, trigger, "\n".join(emails(3)), read_now=True, confirm=True)

    assert launch.state == LaunchState.SENDING
    send_all(launch)
    assert received_values(altcraft) == emails(3)


def test_launch_from_list_by_default_leaves_the_reading_to_a_worker(
    team, trigger, read_by_worker
) -> None:
    with read_by_worker():
        launch = list_launch(team.marketer, trigger, "\n".join(emails(2)))
        assert launch.state == LaunchState.UPLOADED  # the request only stored the list

    launch.refresh_from_db()
    assert launch.state == LaunchState.PREVIEWED
    assert launch.rows_valid == 2


def test_launch_from_list_refuses_invalid_rows_unless_skipped(
    team, trigger, altcraft, upload_dir
) -> None:
    text = "\n".join([*emails(2), "not-an-email"])
    with pytest.raises(services.ListRefused) as refused:
        list_launch(team.marketer, trigger, text, read_now=True, confirm=True)

    assert refused.value.launch.rows_invalid == 1
    assert stored_files(upload_dir) == []  # the list and its chunks went with the refusal
    assert altcraft.received == []

    launch = list_launch(
        team.marketer, trigger, text, read_now=True, skip_invalid=True, confirm=False
    )
    assert launch.state == LaunchState.PREVIEWED
    assert launch.rows_valid == 2


def test_launch_from_list_deletes_the_stored_list_when_the_reading_fails(
    team, trigger, upload_dir, monkeypatch
) -> None:
    def broken(**kwargs):
        raise RuntimeError("the reading broke")

    monkeypatch.setattr(services, "launch_prepare", broken)
    with pytest.raises(RuntimeError, match="the reading broke"):
        list_launch(team.marketer, trigger, "\n".join(emails(2)), read_now=True)

    assert stored_files(upload_dir) == []
