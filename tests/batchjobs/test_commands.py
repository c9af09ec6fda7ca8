"""The ops commands: the same services and guardrails as the pages, acting as a named member."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from batchjobs.models import FilesLanded
from dashboard.models import AuditEvent
from dashboard.runs.models import Run
from dashboard.runs.services import run_send
from dashboard.runs.states import RunState

pytestmark = pytest.mark.django_db


def run_command(*args, **options) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


def test_request_approve_status_through_the_commands(daily, monkeypatch):
    monkeypatch.setattr("getpass.getuser", lambda: "ops-anna")
    out = run_command(
        "daily_trigger_request", "acme", "--as", "mia", "--attest-files-uploaded", "--wait", "10"
    )
    run = Run.objects.get()
    assert run.state == RunState.AWAITING_APPROVAL
    assert run.parameters == {"wait_time_for_validation_seconds": 10}
    assert f"--parameters-hash {run.parameters_hash}" in out
    requested = AuditEvent.objects.get(action="run.requested")
    assert requested.actor == daily.team.marketer.user
    assert requested.actor_label == "mia (cli:ops-anna:daily_trigger_request)"

    status = run_command("daily_trigger_status", "acme")
    assert f"Run #{run.pk}: Daily batch · {run.utc_date:%Y-%m-%d}" in status
    assert "  what: Trigger daily batch (validation wait 10 s)" in status
    assert f"Request #{run.pk} is waiting for an operator's approval" in status
    assert "Can request now: no" in status

    with pytest.raises(CommandError, match=r"Marketer.* cannot approve"):
        run_command(
            "daily_trigger_approve",
            "acme",
            str(run.pk),
            "--as",
            "mia",
            "--parameters-hash",
            run.parameters_hash,
        )
    out = run_command(
        "daily_trigger_approve",
        "acme",
        str(run.pk),
        "--as",
        "oscar",
        "--parameters-hash",
        run.parameters_hash,
    )
    assert f"parameters hash: {run.parameters_hash}" in out  # shown before approving
    assert f"Approved: trigger #{run.pk} is queued" in out
    approved = AuditEvent.objects.get(action="run.approved")
    assert approved.actor_label == "oscar (cli:ops-anna:daily_trigger_approve)"
    assert run_send(run_id=run.pk) == "succeeded"
    status = run_command("daily_trigger_status", "acme", "--as", "olga")
    assert (
        f"Today's trigger: #{run.pk} succeeded, requested by mia (cli:ops-anna:daily_trigger_request), approved by oscar"
        in status
    )
    assert "Today's batch was already triggered" in status


def test_approve_needs_the_hash_or_a_terminal_confirmation(daily, monkeypatch):
    run_command("daily_trigger_request", "acme", "--as", "mia", "--attest-files-uploaded")
    run = Run.objects.get()
    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))  # not a terminal
    with pytest.raises(CommandError, match="Pass --parameters-hash"):
        run_command("daily_trigger_approve", "acme", str(run.pk), "--as", "oscar")
    with pytest.raises(CommandError, match="parameters changed"):
        run_command(
            "daily_trigger_approve",
            "acme",
            str(run.pk),
            "--as",
            "oscar",
            "--parameters-hash",
            "0" * 64,
        )

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal("nope\n"))
    with pytest.raises(CommandError, match="Not approved"):
        run_command("daily_trigger_approve", "acme", str(run.pk), "--as", "oscar")
    monkeypatch.setattr("sys.stdin", Terminal(run.parameters_hash[:8] + "\n"))
    out = run_command("daily_trigger_approve", "acme", str(run.pk), "--as", "oscar")
    assert "Approved" in out
    run.refresh_from_db()
    assert run.state == RunState.QUEUED


def test_request_command_refuses_bad_input(daily):
    with pytest.raises(CommandError, match="--attest-files-uploaded"):
        run_command("daily_trigger_request", "acme", "--as", "mia")
    with pytest.raises(CommandError, match="between 0 and 30"):
        run_command(
            "daily_trigger_request",
            "acme",
            "--as",
            "mia",
            "--attest-files-uploaded",
            "--wait",
            "31",
        )
    with pytest.raises(CommandError, match="cannot request"):
        run_command("daily_trigger_request", "acme", "--as", "aude", "--attest-files-uploaded")
    with pytest.raises(CommandError, match="No active user"):
        run_command("daily_trigger_request", "acme", "--as", "nobody", "--attest-files-uploaded")
    with pytest.raises(CommandError, match="No tenant"):
        run_command("daily_trigger_request", "nope", "--as", "mia", "--attest-files-uploaded")
    with pytest.raises(CommandError, match="no daily trigger run #999"):
        run_command(
            "daily_trigger_approve", "acme", "999", "--as", "oscar", "--parameters-hash", "x"
        )
    assert not Run.objects.exists()


def test_with_approval_off_an_operator_command_sends_and_follows(daily, monkeypatch):
    daily.team.tenant.approval_required = False
    daily.team.tenant.save()
    with pytest.raises(CommandError, match="only operators trigger"):
        run_command("daily_trigger_request", "acme", "--as", "mia", "--attest-files-uploaded")
    import time

    import dashboard.management.commands._common as cli

    class WorkerClock:
        """The command's pauses while it follows the run: a worker sends the run meanwhile."""

        monotonic = staticmethod(time.monotonic)

        @staticmethod
        def sleep(seconds: float) -> None:
            run = Run.objects.get()
            if run.state == RunState.QUEUED:
                run_send(run_id=run.pk)

    monkeypatch.setattr(cli, "time", WorkerClock)
    out = run_command(
        "daily_trigger_request", "acme", "--as", "oscar", "--attest-files-uploaded", "--follow"
    )
    assert "run #" in out and ": Succeeded" in out
    assert daily.calls() == 1


def test_files_landed_command(daily):
    out = run_command("daily_files_landed", "acme", "--pipeline", "nightly-export")
    signal = FilesLanded.objects.get()
    assert signal.source == "pipeline" and signal.given_by is None
    assert "signalled by pipeline:nightly-export" in out
    with pytest.raises(CommandError, match="future"):
        run_command("daily_files_landed", "acme", "--as", "mia", "--date", "2999-01-01")


def test_talkifai_start_command(team, talkifai, register_job):
    register_job("job-pending-001")
    with pytest.raises(CommandError, match="Pass --yes"):
        run_command("talkifai_start_job", "acme", "job-pending-001", "--as", "oscar")
    with pytest.raises(CommandError, match="cannot start"):
        run_command("talkifai_start_job", "acme", "job-pending-001", "--as", "mia", "--yes")
    out = run_command("talkifai_start_job", "acme", "job-pending-001", "--as", "oscar", "--yes")
    assert "status at TalkifAI: pending, 80 contacts" in out
    run = Run.objects.get()
    assert f"Start requested (run #{run.pk})" in out
    assert run.requested_by == team.operator.user
    run_send(run_id=run.pk)
    with pytest.raises(CommandError, match="this one is running"):
        run_command("talkifai_start_job", "acme", "job-pending-001", "--as", "oscar", "--yes")


def test_talkifai_start_command_registers_on_request(team, talkifai):
    with pytest.raises(CommandError, match="pass --register"):
        run_command("talkifai_start_job", "acme", "job-scheduled-001", "--as", "oscar", "--yes")
    with pytest.raises(CommandError, match="no batch job 'job-nope'"):
        run_command(
            "talkifai_start_job", "acme", "job-nope", "--as", "oscar", "--yes", "--register"
        )
    out = run_command(
        "talkifai_start_job", "acme", "job-scheduled-001", "--as", "oscar", "--yes", "--register"
    )
    assert "scheduled for" in out and "120 contacts" in out
    talkifai.inject_fault("batch_job_detail", "server_error")
    with pytest.raises(CommandError, match="Status unavailable"):
        run_command("talkifai_start_job", "acme", "job-scheduled-001", "--as", "oscar", "--yes")


def test_an_approval_by_command_still_needs_a_second_person(daily):
    run_command("daily_trigger_request", "acme", "--as", "oscar", "--attest-files-uploaded")
    run = Run.objects.get()
    with pytest.raises(CommandError, match=r"another operator must approve|a second person must"):
        run_command(
            "daily_trigger_approve",
            "acme",
            str(run.pk),
            "--as",
            "oscar",
            "--parameters-hash",
            run.parameters_hash,
        )
    run_command(
        "daily_trigger_approve",
        "acme",
        str(run.pk),
        "--as",
        "olga",
        "--parameters-hash",
        run.parameters_hash,
    )
    run.refresh_from_db()
    assert run.state == RunState.QUEUED
