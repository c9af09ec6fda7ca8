"""altcraft_launch / altcraft_import: the same services as the pages, audited as cli:<os-user>."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from campaigns.altcraft_launches.models import AltcraftLaunch, LaunchState
from dashboard.models import AuditEvent
from dashboard.runs.services import run_send

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def recipients(tmp_path):
    path = tmp_path / "recipients.csv"
    path.write_text("email\nexample1@example.com\nwrong\nexample2@example.com\n", encoding="utf-8")
    return str(path)


def test_dry_run_previews_and_sends_nothing(team, trigger, altcraft, recipients) -> None:
    output = run(
        "altcraft_launch",
        "--trigger",
        "8",
        "--file",
        recipients,
        "--matching",
        "email",
        "--dry-run",
        "--as",
        "mia",
    )

    assert "rows to send: 2" in output
    assert "row 3: not an email address: 'wrong'" in output
    assert "Dry run: nothing was sent" in output
    assert AltcraftLaunch.objects.get().state == LaunchState.DISCARDED
    assert altcraft.received == []


def test_yes_sends_through_the_engine_and_audits_the_os_user(team, trigger, altcraft, recipients):
    output = run("altcraft_launch", "--trigger", "8", "--file", recipients, "--yes", "--as", "mia")

    assert "Sending in 1 requests" in output
    launch = AltcraftLaunch.objects.get()
    [chunk] = launch.chunks.all()
    assert run_send(run_id=chunk.run_id) == "succeeded"
    assert len(altcraft.received_on("start_batch")) == 1
    labels = set(
        AuditEvent.objects.filter(action="altcraft.launch_confirmed").values_list(
            "actor_label", flat=True
        )
    )
    [label] = labels
    assert label.startswith("mia (cli:") and label.endswith(":altcraft_launch)")


def test_a_bad_file_is_refused_with_its_reason(team, trigger, altcraft, tmp_path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("email,name,name\na@example.com,Ann,A\n", encoding="utf-8")

    with pytest.raises(CommandError, match="names the column 'name' more than once"):
        run("altcraft_launch", "--trigger", "8", "--file", str(path), "--yes", "--as", "mia")
    assert altcraft.received == []


def test_approval_by_a_second_operator_on_the_command_line(team, trigger, recipients) -> None:
    from campaigns.altcraft_launches import services
    from dashboard.audit.trail import Actor

    services.altcraft_settings_update(
        actor=Actor(user=team.admin.user),
        tenant=team.tenant,
        approval_required=True,
        retention_hours=24,
    )
    output = run(
        "altcraft_launch", "--trigger", "8", "--file", recipients, "--yes", "--as", "oscar"
    )
    launch = AltcraftLaunch.objects.get()
    assert "An operator must approve it" in output
    with pytest.raises(CommandError, match="Four eyes"):
        run(
            "altcraft_launch",
            "--approve",
            str(launch.pk),
            "--sha256",
            launch.source_sha256,
            "--as",
            "oscar",
        )

    run(
        "altcraft_launch",
        "--approve",
        str(launch.pk),
        "--sha256",
        launch.source_sha256,
        "--as",
        "olga",
    )

    launch.refresh_from_db()
    assert launch.state == LaunchState.SENDING


def test_import_with_a_mapping_on_the_command_line(team, trigger, altcraft, tmp_path) -> None:
    path = tmp_path / "profiles.csv"
    path.write_text("Email,Name,Notes\nann@example.com,Ann,x\n", encoding="utf-8")

    output = run(
        "altcraft_import",
        "--trigger",
        "8",
        "--file",
        str(path),
        "--map",
        "Email=field:email",
        "--map",
        "Name=field:_fname",
        "--map",
        "Notes=ignore",
        "--yes",
        "--as",
        "mia",
    )

    assert "rows to send: 1" in output
    [chunk] = AltcraftLaunch.objects.get().chunks.all()
    assert run_send(run_id=chunk.run_id) == "accepted"
    [received] = altcraft.received_on("import_and_start_batch_task")
    assert json.loads(received.body)["data"] == [
        {"data": {"email": "ann@example.com", "_fname": "Ann"}}
    ]


def test_retry_of_another_persons_launch_is_refused(team, trigger, altcraft, recipients) -> None:
    from dashboard.models import Role
    from dashboard.vendors.sandbox import Fault
    from tests.factories import MembershipFactory, UserFactory

    run("altcraft_launch", "--trigger", "8", "--file", recipients, "--yes", "--as", "mia")
    launch = AltcraftLaunch.objects.get()
    [chunk] = launch.chunks.all()
    altcraft.inject_fault("start_batch", Fault.SERVER_ERROR, status=400)
    run_send(run_id=chunk.run_id)
    MembershipFactory(tenant=team.tenant, user=UserFactory(username="max"), role=Role.MARKETER)

    with pytest.raises(CommandError, match="Only the uploader or an operator"):
        run("altcraft_launch", "--retry", str(launch.pk), "--as", "max")
    chunk.refresh_from_db()
    assert chunk.retries == 0
    assert "Sending 1 failed request(s) again" in run(
        "altcraft_launch", "--retry", str(launch.pk), "--as", "oscar"
    )


def test_an_operator_registers_a_trigger_from_the_command_line(team, connection) -> None:
    from campaigns.altcraft_launches.models import AltcraftTrigger

    output = run(
        "altcraft_trigger_register",
        "--trigger-id",
        "96",
        "--name",
        "Registration form",
        "--content-field",
        "page",
        "--content-field",
        "promo",
        "--as",
        "oscar",
    )

    assert "Registered" in output and "Registration form" in output
    trigger = AltcraftTrigger.objects.get(trigger_id=96)
    assert trigger.connection == connection and trigger.content_fields == ["page", "promo"]
    event = AuditEvent.objects.get(action="altcraft.trigger_registered")
    assert event.actor == team.operator.user and "altcraft_trigger_register" in event.actor_label

    with pytest.raises(CommandError, match="already registered"):
        run("altcraft_trigger_register", "--trigger-id", "96", "--name", "Again", "--as", "oscar")
    with pytest.raises(CommandError, match="--matching: Select a valid choice"):
        run(
            "altcraft_trigger_register",
            *("--trigger-id", "97", "--name", "X", "--matching", "fax", "--as", "oscar"),
        )
    with pytest.raises(CommandError, match=r"Marketer.*operators and admins do"):
        run("altcraft_trigger_register", "--trigger-id", "98", "--name", "Y", "--as", "mia")
    assert AltcraftTrigger.objects.count() == 1


def test_a_chunk_whose_outcome_is_unknown_is_settled_from_the_command_line(
    team, trigger, altcraft, recipients
) -> None:
    from dashboard.runs.states import RunState
    from dashboard.vendors.sandbox import Fault

    run("altcraft_launch", "--trigger", "8", "--file", recipients, "--yes", "--as", "mia")
    launch = AltcraftLaunch.objects.get()
    [chunk] = launch.chunks.all()
    altcraft.inject_fault("start_batch", Fault.DROP_AFTER_PROCESSING)
    assert run_send(run_id=chunk.run_id).startswith("outcome unknown")

    output = run(
        "run_settle",
        *("--chunk", f"{launch.pk}:{chunk.number}", "--mark-as-sent"),
        *("--reason", "Altcraft's campaign report lists both recipients", "--as", "oscar"),
    )

    assert f"Run #{chunk.run_id} marked as sent" in output
    chunk.refresh_from_db()
    assert chunk.run.state == RunState.SUCCEEDED
    assert len(altcraft.received_on("start_batch")) == 1
    with pytest.raises(CommandError, match="No chunk 9 of launch"):
        run(
            "run_settle",
            "--chunk",
            f"{launch.pk}:9",
            "--send-again",
            "--reason",
            "x",
            "--as",
            "oscar",
        )


def test_a_crm_export_sends_the_named_column_once_empty_rows_are_skipped(
    team, trigger, altcraft, tmp_path
) -> None:
    path = tmp_path / "crm.csv"
    path.write_text(
        "first_name,E-mail,page\nAnn,example1@example.com,cart\nBob,,home\n", encoding="utf-8"
    )
    arguments = ["altcraft_launch", "--trigger", "8", "--file", str(path), "--as", "mia"]

    with pytest.raises(CommandError) as refused:
        run(*arguments, "--column", "E-mail", "--yes")
    assert "1 row (row 3) has no value in the column 'E-mail'" in str(refused.value)
    assert "--skip-empty" in str(refused.value)
    assert AltcraftLaunch.objects.get().state == LaunchState.DISCARDED
    assert altcraft.received == []

    output = run(*arguments, "--column", "E-mail", "--skip-empty", "--yes")

    assert "column sent: E-mail" in output and "ignored: first_name, page" in output
    assert "rows with no E-mail (not sent): 1 (rows 3)" in output
    launch = AltcraftLaunch.objects.get(state=LaunchState.SENDING)
    run_send(run_id=launch.chunks.get().run_id)
    [received] = altcraft.received_on("start_batch")
    assert json.loads(received.body)["data"] == [{"email": "example1@example.com"}]
