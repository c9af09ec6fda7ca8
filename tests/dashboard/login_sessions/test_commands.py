"""end_sessions: an admin of the tenant, named by --as, ends a member's sessions from the
command line; audited with the operating-system user."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from dashboard.models import AuditEvent

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_an_admin_ends_a_members_sessions_from_the_command_line(team, browser_login):
    member = browser_login("oscar")

    said = run("end_sessions", "acme", "--username", "oscar", "--as", "ada")

    assert said.strip() == "1 session(s) of oscar ended (audited in Acme Sports)."
    assert member.get("/t/acme/").status_code == 302
    event = AuditEvent.objects.get(action="member.sessions_ended")
    assert event.actor_label.startswith("ada (cli:") and event.tenant == team.tenant


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--username", "oscar", "--as", "olga"], "Only an admin of Acme Sports"),
        (["--username", "zed-operator", "--as", "ada"], "has no member named 'zed-operator'"),
        (["--username", "oscar", "--as", "zed-admin"], "zed-admin is not a member of Acme Sports"),
    ],
)
def test_refusals_end_nothing(team, other_team, browser_login, args, says):
    member = browser_login("oscar")
    with pytest.raises(CommandError, match=says):
        run("end_sessions", "acme", *args)
    assert member.get("/t/acme/").status_code == 200
    assert not AuditEvent.objects.filter(action="member.sessions_ended").exists()
