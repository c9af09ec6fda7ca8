import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from dashboard.models import AuditEvent, Membership, Tenant, VendorConnection
from dashboard.services import connection_secrets

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
