import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from dashboard.models import AuditEvent, Membership, Tenant, VendorConnection
from dashboard.tenancy.credentials import connection_secrets

pytestmark = pytest.mark.django_db


def test_create_tenant_add_member_add_connection(monkeypatch):
    call_command("create_tenant", "Acme Sports", "--slug", "acme")
    tenant = Tenant.objects.get(slug="acme")
    monkeypatch.setenv("DJANGO_PASSWORD", "a long demo password")
    call_command("add_member", "acme", "ops-anna", "operator", "--create")
    assert Membership.objects.get(tenant=tenant, user__username="ops-anna").role == "operator"

    monkeypatch.setenv("OPTI_KEY", "env-secret-value-1234")
    call_command(
        "add_connection",
        "acme",
        "optimove_batch",
        "Optimove EU",
        "https://api.example.com",
        "--api-key-env",
        "OPTI_KEY",
    )
    connection = VendorConnection.objects.get(tenant=tenant)
    assert connection_secrets(connection) == {"api_key": "env-secret-value-1234"}

    monkeypatch.setattr("sys.stdin", io.StringIO("stdin-token-5678\n"))
    call_command("add_connection", "acme", "altcraft", "Altcraft", "https://alt.example.com/prefix")
    assert connection_secrets(VendorConnection.objects.get(name="Altcraft")) == {
        "token": "stdin-token-5678"
    }

    actions = list(
        AuditEvent.objects.filter(tenant=tenant).order_by("id").values_list("action", "actor_label")
    )
    assert actions[0][0] == "tenant.created"
    assert all(label.startswith("cli:") for _, label in actions)
    assert {"member.added", "connection.created", "connection.secret_set"} <= {
        a for a, _ in actions
    }


def test_commands_refuse_bad_input():
    call_command("create_tenant", "Acme")
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_tenant", "Acme")
    get_user_model().objects.create_user("bob")
    with pytest.raises(CommandError, match="Unknown role"):
        call_command("add_member", "acme", "bob", "superuser")
    with pytest.raises(CommandError, match="No tenant"):
        call_command("add_member", "nope", "bob", "marketer")
    with pytest.raises(CommandError, match="Unknown vendor kind"):
        call_command("add_connection", "acme", "mailchimp", "X", "https://x.example.com")


def test_add_connection_has_no_command_line_secret_option():
    with pytest.raises(CommandError):
        call_command(
            "add_connection",
            "acme",
            "optimove_batch",
            "X",
            "https://x.example.com",
            "--api-key",
            "oops",
        )


def test_add_connection_bad_url_or_empty_secret_saves_nothing(monkeypatch):
    call_command("create_tenant", "Acme")
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    with pytest.raises(CommandError, match="Missing"):
        call_command("add_connection", "acme", "optimove_batch", "X", "https://x.example.com")
    monkeypatch.setattr("sys.stdin", io.StringIO("secret-value-123\n"))
    with pytest.raises(CommandError, match="absolute http"):
        call_command("add_connection", "acme", "optimove_batch", "X", "nota-url")
    assert VendorConnection.objects.count() == 0


def test_setup_demo_names_jobs_without_a_status_that_goes_stale(sandboxes, settings):
    # Issue 9, item 17: "Appointment reminders (running)" stayed "(running)" after it ended.
    from batchjobs.models import BatchJob

    settings.SANDBOX_BASE_URL = sandboxes.server.url()
    call_command("setup_demo", stdout=io.StringIO())
    names = set(BatchJob.objects.values_list("name", flat=True))
    assert "Appointment reminders" in names and len(names) == 6
    assert not any("(" in name for name in names)


def unknown_outcome_run(team, **fields):
    from datetime import timedelta

    from dashboard.clock import utc_now
    from dashboard.runs.states import RunState
    from tests.factories import RunFactory

    return RunFactory(
        tenant=team.tenant,
        state=RunState.OUTCOME_UNKNOWN,
        requested_by=team.marketer.user,
        needs_person=True,
        attempt_count=1,
        sent_at=utc_now() - timedelta(minutes=5),
        failure_class="outcome_unknown",
        failure_code="timeout",
        **fields,
    )


def settle(*args: str) -> str:
    out = io.StringIO()
    call_command("run_settle", *args, stdout=out)
    return out.getvalue()


def test_run_settle_marks_as_sent_with_the_reason_audited_as_the_member(team):
    from dashboard.runs.states import RunState

    run = unknown_outcome_run(team)
    evidence = "TalkifAI dashboard shows job-9 running since 10:02 UTC"

    output = settle("--run", str(run.pk), "--mark-as-sent", "--reason", evidence, "--as", "oscar")

    assert f"Run #{run.pk} marked as sent" in output
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED and run.result["evidence"] == evidence
    event = AuditEvent.objects.get(action="run.marked_as_sent", object_id=str(run.pk))
    assert event.actor == team.operator.user and "run_settle" in event.actor_label
    assert event.summary["reason"] == evidence


def test_run_settle_sends_again_and_refuses_what_the_page_refuses(team, other_team):
    from dashboard.runs.states import RunState

    run = unknown_outcome_run(team)
    with pytest.raises(CommandError, match=r"Marketer\) cannot settle runs"):
        settle("--run", str(run.pk), "--send-again", "--reason", "Not in the UI", "--as", "mia")
    with pytest.raises(CommandError, match=f"No run #{run.pk} in your tenants"):
        settle("--run", str(run.pk), "--send-again", "--reason", "Not there", "--as", "zed-admin")
    with pytest.raises(CommandError, match="Say how you know"):
        settle("--run", str(run.pk), "--send-again", "--reason", " ", "--as", "oscar")
    run.refresh_from_db()
    assert run.state == RunState.OUTCOME_UNKNOWN

    output = settle("--run", str(run.pk), "--send-again", "--reason", "Not there", "--as", "ada")
    assert "queued to be sent again" in output
    run.refresh_from_db()
    assert run.state == RunState.QUEUED
    with pytest.raises(CommandError, match="was not changed: Only a run whose outcome is unknown"):
        settle("--run", str(run.pk), "--mark-as-sent", "--reason", "Seen", "--as", "oscar")


def test_test_connection_reports_the_result_and_audits_it(team, sandbox_connection, sandboxes):
    connection = sandbox_connection(team.tenant, "talkifai")
    out = io.StringIO()

    call_command("test_connection", "acme", connection.name, "--as", "ada", stdout=out)

    assert "Connection test passed" in out.getvalue()
    assert "API key accepted" in out.getvalue()
    assert AuditEvent.objects.get(action="connection.tested").summary["result"] == "ok"
    assert sandboxes["talkifai"].received_on("start_batch_job") == []


def test_test_connection_fails_loudly_and_refuses_non_admins(team, sandbox_connection):
    connection = sandbox_connection(
        team.tenant, "altcraft", secret_values={"token": "wrong-token-4321"}
    )
    with pytest.raises(CommandError, match="Invalid token") as failed:
        call_command("test_connection", "acme", connection.name, "--as", "ada")
    assert "wrong-token-4321" not in str(failed.value)
    with pytest.raises(CommandError, match="Not tested: Only an admin"):
        call_command("test_connection", "acme", connection.name, "--as", "oscar")
    with pytest.raises(CommandError, match="no connection named"):
        call_command("test_connection", "acme", "nope", "--as", "ada")
