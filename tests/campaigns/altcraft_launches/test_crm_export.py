"""A real CRM export as a bulk launch: the uploader picks the column whose values are sent (the
others are ignored and listed), rows with no value in it are decided on, and a header naming a
column twice is refused. Only the chosen column's values reach Altcraft."""

from __future__ import annotations

import io
import json
import uuid

import pytest
from django.core.exceptions import ValidationError

from campaigns.altcraft_launches import services
from campaigns.altcraft_launches.models import AltcraftLaunch, LaunchState
from dashboard.models import AuditEvent
from dashboard.runs.services import RunActionError
from tests.campaigns.altcraft_launches.conftest import actor_of, prepare, send_all

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]

CRM_EXPORT = (
    b"first_name,email,page\n"
    b"Ann,ann@example.com,cart\n"
    b"Bob,,home\n"
    b"Cid,example1@example.com,cart\n"
    b"Dee,,\n"
    b",,\n"
)


def sent_items(altcraft) -> list[dict]:
    items = []
    for received in altcraft.received_on("start_batch"):
        if received.processed:
            items += json.loads(received.body)["data"]
    return items


def test_only_the_chosen_column_is_sent_and_the_others_are_listed(team, trigger, altcraft) -> None:
    launch = prepare(team.marketer, trigger, CRM_EXPORT, column="email")

    assert launch.state == LaunchState.PREVIEWED, launch.problem
    assert launch.column == "email"
    assert launch.ignored_columns == ["first_name", "page"]
    assert (launch.rows_read, launch.rows_valid, launch.rows_invalid) == (4, 2, 0)
    # Rows 3 and 5 have a first name but no email; row 6 is blank (not a row at all).
    assert (launch.rows_empty, launch.empty_samples) == (2, [3, 5])
    trigger.refresh_from_db()
    assert trigger.launch_choice == {"column": "email", "matching": "email", "field_name": ""}

    launch = services.launch_confirm(
        actor=actor_of(team.marketer),
        launch=launch,
        sha256_seen=launch.source_sha256,
        skip_empty=True,
    )
    send_all(launch)

    # The sandbox's ledger: each item holds the matching key only, as the doc's example does.
    assert sent_items(altcraft) == [{"email": "ann@example.com"}, {"email": "example1@example.com"}]
    [received] = altcraft.received_on("start_batch")
    assert json.loads(received.body)["matching"] == "email"
    assert "Ann" not in received.body and "cart" not in received.body
    confirmed = AuditEvent.objects.get(action="altcraft.launch_confirmed")
    assert confirmed.summary["empty_rows_skipped"] == 2


def test_rows_without_a_value_cannot_be_confirmed_without_saying_skip(
    team, trigger, altcraft
) -> None:
    launch = prepare(team.marketer, trigger, CRM_EXPORT, column="email")

    with pytest.raises(RunActionError) as refused:
        services.launch_confirm(
            actor=actor_of(team.marketer), launch=launch, sha256_seen=launch.source_sha256
        )

    assert str(refused.value) == (
        "2 rows (rows 3, 5) have no value in the column 'email'. Choose to skip them, or "
        "discard the launch and fill them in. Nothing was sent."
    )
    launch.refresh_from_db()
    assert (
        launch.state == LaunchState.PREVIEWED
        and launch.chunks.filter(run__isnull=False).count() == 0
    )
    assert altcraft.received == []


def test_a_column_named_like_the_matching_kind_is_found_without_being_named(team, trigger) -> None:
    content = b"First name;E-Mail;Page\nAnn;ann@example.com;cart\n"

    launch = prepare(team.marketer, trigger, content)

    assert launch.state == LaunchState.PREVIEWED, launch.problem
    assert (launch.column, launch.ignored_columns) == ("E-Mail", ["First name", "Page"])


def test_a_custom_field_is_sent_as_field_value_from_any_column(team, trigger, altcraft) -> None:
    content = b"name,crm id,email\nAnn,003,ann@example.com\nBob,002,\n"

    launch = prepare(
        team.marketer,
        trigger,
        content,
        column="crm id",
        matching="custom",
        field_name="Custom_ID",
    )
    services.launch_confirm(
        actor=actor_of(team.marketer), launch=launch, sha256_seen=launch.source_sha256
    )
    send_all(launch)

    [received] = altcraft.received_on("start_batch")
    body = json.loads(received.body)
    assert (body["matching"], body["field_name"]) == ("custom", "Custom_ID")
    assert body["data"] == [{"field_value": "003"}, {"field_value": "002"}]


@pytest.mark.parametrize(
    ("content", "column", "problem"),
    [
        (
            b"email,page,email\na@example.com,x,b@example.com\n",
            "email",
            "Row 1 (the header) names the column 'email' more than once (columns 1 and 3)",
        ),
        (b"first_name,page\nAnn,cart\n", "email", "Row 1 (the header) has no column 'email'"),
        (b"first_name,page\nAnn,cart\n", None, "has no column named 'email'"),
        (b"first_name,email\nAnn,\nBob,\n", "email", "No row of the file can be sent"),
    ],
)
def test_a_header_or_column_that_cannot_be_sent_is_refused_and_kept_nowhere(
    team, trigger, altcraft, upload_dir, content, column, problem
) -> None:
    launch = prepare(team.marketer, trigger, content, column=column)

    assert launch.state == LaunchState.DISCARDED
    assert problem in launch.problem
    assert launch.chunks.count() == 0 and altcraft.received == []
    assert list(upload_dir.iterdir()) == []  # the upload and any chunk file are deleted


def test_an_xlsx_crm_export_sends_its_chosen_column(team, trigger) -> None:
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.active.append(["first_name", "Mobile", "email"])
    workbook.active.append(["Ann", "+7 900 000-00-00", "ann@example.com"])
    workbook.active.append(["Bob", None, "bob@example.com"])
    buffer = io.BytesIO()
    workbook.save(buffer)

    launch = prepare(
        team.marketer,
        trigger,
        buffer.getvalue(),
        name="crm.xlsx",
        column="Mobile",
        matching="phone",
    )

    assert launch.state == LaunchState.PREVIEWED, launch.problem
    assert (launch.rows_valid, launch.rows_empty, launch.empty_samples) == (1, 1, [3])
    assert launch.ignored_columns == ["first_name", "email"]


def test_an_upload_with_several_columns_waits_for_its_column(team, trigger, upload_dir) -> None:
    actor = actor_of(team.marketer)
    upload = services.upload_store(pieces=[CRM_EXPORT])

    launch = services.launch_from_list(
        actor=actor,
        trigger=trigger,
        kind="start_batch",
        upload=upload,
        source_name="crm.csv",
        parameters={"matching": "email"},
        idempotency_key=uuid.uuid4().hex,
    )

    # Nothing is read until the uploader chooses: the launch is not "reading".
    assert launch.state == LaunchState.UPLOADED and not launch.is_reading
    assert services.launches_reading_resume() == 0
    names = services.launch_columns(launch=launch)
    assert names == ["first_name", "email", "page"]
    assert services.launch_column_default(launch=launch, names=names) == "email"

    with pytest.raises(ValidationError) as refused:
        services.launch_column_choose(
            actor=actor, launch=launch, names=names, column="phone", matching="email"
        )
    assert refused.value.message_dict == {"column": ["Choose one of the file's columns."]}
    launch.refresh_from_db()
    assert launch.column == "" and launch.reading_queued_at is None

    launch = services.launch_column_choose(
        actor=actor, launch=launch, names=names, column="email", matching="email"
    )
    assert launch.is_reading and launch.column == "email"
    queued = AuditEvent.objects.get(action="altcraft.launch_reading_queued")
    assert queued.summary == {"column": "email"}


def test_only_the_uploader_chooses_the_column(team, trigger) -> None:
    from django.core.exceptions import PermissionDenied

    launch = services.launch_from_list(
        actor=actor_of(team.marketer),
        trigger=trigger,
        kind="start_batch",
        upload=services.upload_store(pieces=[CRM_EXPORT]),
        source_name="crm.csv",
        parameters={"matching": "email"},
        idempotency_key=uuid.uuid4().hex,
    )

    with pytest.raises(PermissionDenied):
        services.launch_column_choose(
            actor=actor_of(team.operator),
            launch=launch,
            names=["first_name", "email", "page"],
            column="email",
            matching="email",
        )
    launch.refresh_from_db()
    assert launch.column == ""


def test_the_last_choice_is_offered_again_for_the_trigger(team, trigger) -> None:
    prepare(
        team.marketer,
        trigger,
        b"name,Contact\nAnn,ann@example.com\n",
        column="Contact",
    )
    trigger.refresh_from_db()
    launch = services.launch_from_list(
        actor=actor_of(team.marketer),
        trigger=trigger,
        kind="start_batch",
        upload=services.upload_store(pieces=[b"Contact,name,page\nb@example.com,Bob,x\n"]),
        source_name="crm.csv",
        parameters={"matching": "email"},
        idempotency_key=uuid.uuid4().hex,
    )

    names = services.launch_columns(launch=launch)
    assert services.launch_column_default(launch=launch, names=names) == "Contact"
    # A column named like the matching kind comes first.
    assert services.launch_column_default(launch=launch, names=["Contact", "email"]) == "email"


def test_a_header_naming_a_column_twice_is_a_file_error_and_nothing_is_kept(
    team, trigger, upload_dir
) -> None:
    upload = services.upload_store(pieces=[b"email,page,page\na@example.com,x,y\n"])

    with pytest.raises(ValidationError) as refused:
        services.launch_from_list(
            actor=actor_of(team.marketer),
            trigger=trigger,
            kind="start_batch",
            upload=upload,
            source_name="crm.csv",
            parameters={"matching": "email"},
            idempotency_key=uuid.uuid4().hex,
        )

    [message] = refused.value.message_dict["file"]
    assert "names the column 'page' more than once (columns 2 and 3)" in message
    assert AltcraftLaunch.objects.count() == 0
    assert list(upload_dir.iterdir()) == []


def test_a_single_column_named_like_the_kind_is_read_at_once(team, trigger, read_by_worker) -> None:
    with read_by_worker():
        launch = services.launch_from_list(
            actor=actor_of(team.marketer),
            trigger=trigger,
            kind="start_batch",
            upload=services.upload_store(pieces=[b"Email\na@example.com\n"]),
            source_name="list.csv",
            parameters={"matching": "email"},
            idempotency_key=uuid.uuid4().hex,
        )
    launch.refresh_from_db()
    assert launch.state == LaunchState.PREVIEWED and launch.column == "Email"
    assert launch.ignored_columns == []


def test_a_row_too_short_to_reach_the_column_counts_as_empty(team, trigger) -> None:
    content = b"first_name,page,email\nAnn,cart,ann@example.com\nBob\nCid,home\n"

    launch = prepare(team.marketer, trigger, content, column="email")

    assert launch.state == LaunchState.PREVIEWED, launch.problem
    assert (launch.rows_valid, launch.rows_empty, launch.empty_samples) == (1, 2, [3, 4])
    assert launch.rows_invalid == 0
