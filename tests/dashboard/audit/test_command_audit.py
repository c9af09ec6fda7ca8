"""Every management command of the app that acts writes audit rows naming the operating-system
user who ran it (`cli:<os-user>:<command>`), and the member named by --as when there is one.

--as proves nothing by itself: whoever can run the commands can name anyone. What the audit can
hold on to is the OS account, so every row a command writes must carry it. The list of commands
is read from Django, so a new command fails `test_every_command_is_classified` until it is
added here with a test of its audit rows (or declared read-only).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.core.management import CommandError, call_command, get_commands

from dashboard.audit.trail import Actor
from dashboard.models import AuditEvent, Tenant

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]

OS_USER = "ops-anna"
APPS = ("dashboard", "batchjobs", "campaigns")

# Commands that write nothing (they read, print or serve).
READ_ONLY = {
    "daily_trigger_status": "prints the daily trigger's status",
    "verify_audit": "reads the audit chains (and records its result, not an audit row)",
    # Not read-only, but not an action of a person on a tenant: no audit row of their own.
    "flush": "Django's flush for the test runner; refused on the audit tables unless superuser",
    "generate_history": "bench data: writes a synthetic history with its own valid audit chain",
    "run_sandboxes": "serves the vendor sandboxes; writes no rows",
    "run_demo": "starts the demo's processes; writes no rows itself (setup_demo, which it "
    "runs in a child process, has its own case)",
}


@dataclass
class Case:
    """How to run one acting command against the `world` fixture, and whom --as names."""

    run: Callable[[dict], None]
    acting_as: str = ""


def _stdin(monkeypatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


def _daily_request(world):
    call_command(
        "daily_trigger_request",
        "acme",
        "--as",
        "mia",
        "--attest-files-uploaded",
        stdout=io.StringIO(),
    )


def _daily_approve(world):
    from dashboard.runs.models import Run

    _daily_request(world)
    run = Run.objects.get(operation="optimove_trigger_daily")
    world["since"] = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
    call_command(
        "daily_trigger_approve",
        "acme",
        str(run.pk),
        "--as",
        "oscar",
        "--parameters-hash",
        run.parameters_hash,
        stdout=io.StringIO(),
    )


def _altcraft(command: str, *arguments: str):
    """Register an Altcraft trigger (not what is measured), then preview a file with --dry-run."""

    def run(world):
        import tempfile

        from campaigns.altcraft_launches.services import trigger_register
        from dashboard.audit.trail import Actor
        from tests.factories import VendorConnectionFactory

        team = world["team"]
        world["monkeypatch"].setattr("django.conf.settings.ALTCRAFT_UPLOAD_DIR", tempfile.mkdtemp())
        connection = VendorConnectionFactory(tenant=team.tenant, kind="altcraft", name="Altcraft")
        trigger_register(
            actor=Actor(user=team.admin.user),
            tenant=team.tenant,
            connection=connection,
            trigger_id=8,
            name="Cart",
        )
        world["since"] = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as file:
            file.write("email\na@example.com\n")
        call_command(
            command,
            "--trigger",
            "8",
            "--file",
            file.name,
            *arguments,
            "--dry-run",
            "--as",
            "mia",
            stdout=io.StringIO(),
        )

    return run


def _campaign_trigger(world):
    from campaigns.event_generators.services import generator_create
    from dashboard.audit.trail import Actor
    from tests.factories import VendorConnectionFactory

    team = world["team"]
    topic = "6f1c2e0a-1b2c-4d3e-8f40-000000000001"
    generator_create(
        actor=Actor(user=team.marketer.user),
        tenant=team.tenant,
        connection=VendorConnectionFactory(tenant=team.tenant, kind="optimove_campaigns"),
        external_id="00000000-abcd-abcd-abcd-000000000000",
        name="Match start",
        topics=[(topic, "Arsenal")],
        schema={"type": "object", "properties": {"match": {"type": "string"}}},
    )
    path = world["tmp_path"] / "ctx.json"
    path.write_text('{"match": "Arsenal vs Chelsea"}')
    world["since"] = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
    call_command(
        "campaign_trigger",
        "--generator",
        "Match start",
        "--topic",
        "Arsenal",
        "--context-file",
        str(path),
        "--as",
        "mia",
        stdout=io.StringIO(),
    )


def _event_generator_register(world):
    from tests.factories import VendorConnectionFactory

    team = world["team"]
    VendorConnectionFactory(tenant=team.tenant, kind="optimove_campaigns", name="Optimove EG")
    path = world["tmp_path"] / "generator.json"
    path.write_text(
        '{"event_generator_id": "00000000-abcd-abcd-abcd-000000000000", "name": "Match start",'
        ' "schema": {"type": "object", "properties": {"match": {"type": "string"}}}}'
    )
    world["since"] = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
    call_command(
        "event_generator_register", "--file", str(path), "--as", "mia", stdout=io.StringIO()
    )


def _altcraft_trigger_register(world):
    from tests.factories import VendorConnectionFactory

    VendorConnectionFactory(tenant=world["team"].tenant, kind="altcraft", name="Altcraft")
    world["since"] = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
    call_command(
        "altcraft_trigger_register",
        *("--trigger-id", "8", "--name", "Cart", "--as", "oscar"),
        stdout=io.StringIO(),
    )


def _run_settle(world):
    from dashboard.runs.states import RunState
    from tests.factories import RunFactory

    team = world["team"]
    run = RunFactory(tenant=team.tenant, state=RunState.OUTCOME_UNKNOWN, needs_person=True)
    world["since"] = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
    call_command(
        "run_settle",
        *("--run", str(run.pk), "--mark-as-sent", "--reason", "Running in TalkifAI's UI"),
        *("--as", "oscar"),
        stdout=io.StringIO(),
    )


def _test_connection(world):
    from tests.factories import VendorConnectionFactory

    # A closed loopback port: the test fails fast, is audited, and the command exits non-zero.
    VendorConnectionFactory(
        tenant=world["team"].tenant, name="Daily", base_url="http://127.0.0.1:9"
    )
    world["since"] = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
    with contextlib.suppress(CommandError):
        call_command("test_connection", "acme", "Daily", "--as", "ada", stdout=io.StringIO())


def _sso_sync(world):
    # A person who signed in with SSO (their identity and refresh token as a login leaves them),
    # then taken out of their group at the local provider: the sync removes their role.
    from django.test import override_settings

    from dashboard.models import Role
    from dashboard.sso import configuration
    from dashboard.sso.models import SsoGroupMapping, SsoIdentity
    from dashboard.sso.services import apply_roles
    from dashboard.tenancy.crypto import encrypt_secret
    from tests.dashboard.sso.provider import CLIENT_ID, CLIENT_SECRET, Provider
    from tests.factories import UserFactory

    provider = Provider().start()
    try:
        SsoGroupMapping.objects.create(
            tenant=world["team"].tenant,
            group="ops",
            role=Role.OPERATOR,
            created_by_label="ada",
            created_at="2026-01-01T00:00Z",
        )
        user = UserFactory(username="sam", email="sam@example.com")
        provider.add("sam", email="sam@example.com", groups=[])
        provider.refresh_tokens["refresh-sam"] = "sam"
        SsoIdentity.objects.create(
            user=user,
            issuer=provider.issuer,
            subject="sub-sam",
            encrypted_refresh_token=encrypt_secret("refresh-sam"),
        )
        apply_roles(user=user, groups=["ops"], actor=Actor(user=user))
        world["since"] = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
        with override_settings(
            SSO_OIDC_ISSUER=provider.issuer,
            SSO_OIDC_CLIENT_ID=CLIENT_ID,
            SSO_OIDC_CLIENT_SECRET=CLIENT_SECRET,
        ):
            configuration.forget_discovery()
            call_command("sso_sync", stdout=io.StringIO())
    finally:
        configuration.forget_discovery()
        provider.stop()


def _resume_sending(world):
    call_command(
        "pause_sending", "acme", "--reason", "Wrong audience", "--as", "oscar", stdout=io.StringIO()
    )
    world["since"] = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
    call_command("resume_sending", "acme", "--as", "oscar", stdout=io.StringIO())


CASES: dict[str, Case] = {
    "pause_sending": Case(
        lambda world: call_command(
            "pause_sending",
            "acme",
            "--reason",
            "Wrong audience",
            "--as",
            "oscar",
            stdout=io.StringIO(),
        ),
        acting_as="oscar",
    ),
    "resume_sending": Case(_resume_sending, acting_as="oscar"),
    "sso_group_mapping": Case(
        lambda world: call_command(
            "sso_group_mapping",
            "acme",
            "set",
            "ops",
            "operator",
            "--as",
            "ada",
            stdout=io.StringIO(),
        ),
        acting_as="ada",
    ),
    "sso_sync": Case(_sso_sync),
    "send_window": Case(
        lambda world: call_command(
            "send_window",
            "acme",
            "TalkifAI",
            *("--weekdays", "Mon-Fri", "--start", "08:00", "--end", "21:00"),
            *("--zone", "Europe/Berlin", "--reason", "Quiet nights", "--as", "oscar"),
            stdout=io.StringIO(),
        ),
        acting_as="oscar",
    ),
    "approval_policy": Case(
        lambda world: call_command(
            "approval_policy",
            "acme",
            "add",
            "--as",
            "ada",
            "--name",
            "Big triggers",
            "--topics-above",
            "20",
            "--approvals",
            "2",
            stdout=io.StringIO(),
        ),
        acting_as="ada",
    ),
    "chat_webhook": Case(
        lambda world: call_command(
            "chat_webhook",
            "acme",
            "set",
            "--slack-url",
            "https://hooks.slack.example/services/T0/B0/xyz",
            "--reason",
            "Approvals in #launches",
            "--as",
            "ada",
            stdout=io.StringIO(),
        ),
        acting_as="ada",
    ),
    "recurring_schedule": Case(
        lambda world: call_command(
            "recurring_schedule",
            "acme",
            "add",
            *("--as", "oscar", "--name", "Morning daily", "--cron", "0 6 * * 1-5"),
            *("--zone", "Europe/Berlin", "--kind", "daily_trigger", "--target", "Optimove"),
            "--attest",
            stdout=io.StringIO(),
        ),
        acting_as="oscar",
    ),
    "test_connection": Case(_test_connection, acting_as="ada"),
    "event_generator_register": Case(_event_generator_register, acting_as="mia"),
    "altcraft_trigger_register": Case(_altcraft_trigger_register, acting_as="oscar"),
    "run_settle": Case(_run_settle, acting_as="oscar"),
    "altcraft_launch": Case(_altcraft("altcraft_launch"), acting_as="mia"),
    "altcraft_import": Case(
        _altcraft("altcraft_import", "--map", "email=field:email"), acting_as="mia"
    ),
    "create_tenant": Case(lambda world: call_command("create_tenant", "Beta Brand")),
    "add_member": Case(
        lambda world: call_command("add_member", "acme", "newbie", "marketer", "--create")
    ),
    "add_connection": Case(
        lambda world: (
            _stdin(world["monkeypatch"], "a-token-value-1234\n"),
            call_command("add_connection", "acme", "altcraft", "Alt", "https://api.example.com"),
        )
    ),
    "rotate_credentials_key": Case(
        lambda world: (
            # It re-encrypts stored files too: never the checkout's own upload directory.
            world["monkeypatch"].setattr(
                "django.conf.settings.ALTCRAFT_UPLOAD_DIR", world["tmp_path"] / "uploads"
            ),
            call_command("rotate_credentials_key", stdout=io.StringIO()),
        )
    ),
    "setup_demo": Case(lambda world: call_command("setup_demo", stdout=io.StringIO())),
    "daily_trigger_request": Case(_daily_request, acting_as="mia"),
    "daily_trigger_approve": Case(_daily_approve, acting_as="oscar"),
    "daily_files_landed": Case(
        lambda world: call_command("daily_files_landed", "acme", "--as", "oscar"),
        acting_as="oscar",
    ),
    "campaign_trigger": Case(lambda world: _campaign_trigger(world), acting_as="mia"),
    "unlock_login": Case(
        lambda world: call_command(
            "unlock_login", "--username", "mia", "--as", "ada", stdout=io.StringIO()
        ),
        acting_as="ada",
    ),
    "end_sessions": Case(
        lambda world: call_command(
            "end_sessions", "acme", "--username", "oscar", "--as", "ada", stdout=io.StringIO()
        ),
        acting_as="ada",
    ),
    "talkifai_start_job": Case(
        lambda world: call_command(
            "talkifai_start_job",
            "acme",
            "job-scheduled-001",
            "--as",
            "oscar",
            "--yes",
            "--register",
            stdout=io.StringIO(),
        ),
        acting_as="oscar",
    ),
}


def app_commands() -> set[str]:
    return {
        name
        for name, app in get_commands().items()
        if app in APPS or any(app.endswith(f".{label}") for label in APPS)
    }


def test_every_command_is_classified():
    unknown = app_commands() - set(CASES) - set(READ_ONLY)
    assert not unknown, (
        f"New management command(s) {sorted(unknown)}: add a case to CASES (its audit rows must "
        "name cli:<os-user>) or list it in READ_ONLY."
    )


@pytest.fixture
def world(team, sandbox_connection, sandboxes, settings, monkeypatch, tmp_path):
    monkeypatch.setattr("getpass.getuser", lambda: OS_USER)
    settings.SANDBOX_BASE_URL = sandboxes.server.url()
    sandboxes["optimove_batch"].control("set_timing", {"real_seconds_per_wait_second": 0.01})
    sandbox_connection(team.tenant, "optimove_batch", name="Optimove")
    sandbox_connection(team.tenant, "talkifai", name="TalkifAI")
    return {"team": team, "monkeypatch": monkeypatch, "since": None, "tmp_path": tmp_path}


@pytest.mark.parametrize("command", sorted(CASES))
def test_the_commands_audit_rows_name_the_os_user(world, command):
    case = CASES[command]
    before = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    case.run(world)
    since = world["since"] or before
    rows = list(AuditEvent.objects.filter(id__gt=since).order_by("id"))
    assert rows, f"{command} wrote no audit row"
    for row in rows:
        assert f"cli:{OS_USER}:{command}" in row.actor_label, (row.action, row.actor_label)
        if case.acting_as:
            assert row.actor_label.startswith(f"{case.acting_as} (cli:{OS_USER}:"), row.actor_label
            assert row.actor is not None and row.actor.get_username() == case.acting_as


def test_a_long_as_name_never_pushes_the_os_user_out_of_the_label(monkeypatch):
    from dashboard.management.commands._common import command_label

    monkeypatch.setattr("getpass.getuser", lambda: OS_USER)
    label = command_label("daily_trigger_approve", acting_as="x" * 150)
    assert len(label) <= 150
    assert label.endswith(f"(cli:{OS_USER}:daily_trigger_approve)")


def test_add_member_create_audits_the_new_account(world):
    call_command("add_member", "acme", "newbie", "marketer", "--create")
    created = AuditEvent.objects.get(action="user.created")
    assert created.summary["username"] == "newbie"
    assert created.actor_label == f"cli:{OS_USER}:add_member"
    assert Tenant.objects.filter(slug="acme").exists()


def test_a_pipeline_signal_names_the_pipeline_and_the_os_user(world):
    call_command("daily_files_landed", "acme", "--pipeline", "nightly-export")
    row = AuditEvent.objects.filter(action__startswith="files_landed").latest("id")
    assert row.actor_label == f"pipeline:nightly-export (cli:{OS_USER}:daily_files_landed)"
