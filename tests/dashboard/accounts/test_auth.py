from io import StringIO

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from dashboard.models import AuditEvent
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def test_login_and_logout_are_audited_with_ip():
    user = UserFactory(username="lena")
    client = Client(REMOTE_ADDR="10.1.2.3")
    response = client.post(reverse("login"), {"username": "lena", "password": PASSWORD})
    assert response.status_code == 302
    client.post(reverse("logout"))
    login, logout = AuditEvent.objects.order_by("id")
    assert (login.action, login.actor_id, login.ip_address) == ("auth.login", user.pk, "10.1.2.3")
    assert logout.action == "auth.logout"


def test_failed_login_is_audited_without_the_password():
    UserFactory(username="lena")
    Client().post(reverse("login"), {"username": "lena", "password": "wrong-password-XYZ"})
    event = AuditEvent.objects.get(action="auth.login_failed")
    assert event.summary == {"username": "lena"}
    assert "wrong-password-XYZ" not in str(event.summary) + event.actor_label


def test_repeated_failed_logins_lock_the_account(settings):
    UserFactory(username="lena")
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("login"), {"username": "lena", "password": "wrong"})
    response = client.post(reverse("login"), {"username": "lena", "password": PASSWORD})
    assert response.status_code == 429
    assert "temporarily locked" in response.content.decode()
    assert not response.wsgi_request.user.is_authenticated
    assert AuditEvent.objects.filter(action="auth.locked_out").exists()


# -- lockout rules: a user name at one address, and a user name from anywhere (higher) ---------


def login(username, password, *, address):
    return Client(REMOTE_ADDR=address).post(
        reverse("login"), {"username": username, "password": password}
    )


def test_made_up_user_names_from_one_address_do_not_lock_anyone_else(settings):
    UserFactory(username="lena")
    for number in range(settings.AXES_FAILURE_LIMIT * 4):
        login(f"made-up-{number % 5}", "wrong", address="10.0.0.1")
    response = login("lena", PASSWORD, address="10.0.0.1")
    assert response.status_code == 302
    assert response.wsgi_request.user.username == "lena"


def test_failures_for_one_name_at_one_address_lock_only_that_pair(settings):
    UserFactory(username="lena")
    UserFactory(username="omar")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login("lena", "wrong", address="10.0.0.1")
    locked = login("lena", PASSWORD, address="10.0.0.1")
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "from this address (10.0.0.1)" in page
    assert "manage.py unlock_login --username lena --ip 10.0.0.1 --as" in page
    # The same person elsewhere, and someone else at the same address, are not locked.
    assert login("lena", PASSWORD, address="10.0.0.2").status_code == 302
    assert login("omar", PASSWORD, address="10.0.0.1").status_code == 302
    event = AuditEvent.objects.filter(action="auth.locked_out").latest("id")
    assert event.summary["locked"] == "this user name from this address"
    assert event.ip_address == "10.0.0.1"


def test_failures_for_one_name_from_many_addresses_lock_the_name(settings):
    UserFactory(username="lena")
    per_address = settings.AXES_FAILURE_LIMIT - 1  # never enough to lock one address
    addresses = [f"10.0.1.{n}" for n in range(1, 100)]
    sent = 0
    for address in addresses:
        for _ in range(per_address):
            if sent < settings.LOGIN_USERNAME_FAILURE_LIMIT:
                login("lena", "wrong", address=address)
                sent += 1
    locked = login("lena", PASSWORD, address="10.0.2.1")
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "Account temporarily locked" in page
    assert "manage.py unlock_login --username lena --as" in page
    event = AuditEvent.objects.filter(action="auth.locked_out").latest("id")
    assert event.summary["locked"] == "this user name from anywhere"


def test_failures_at_an_address_where_the_name_is_locked_do_not_lock_it_everywhere(settings):
    UserFactory(username="lena")
    # Far more failures from one address than the name-wide limit: all but the first few are
    # refused by the lockout at that address, and must not count toward the name's limit.
    for _ in range(settings.LOGIN_USERNAME_FAILURE_LIMIT * 4):
        login("lena", "wrong", address="10.0.0.1")
    assert login("lena", PASSWORD, address="10.0.0.1").status_code == 429
    elsewhere = login("lena", PASSWORD, address="10.0.0.2")
    assert elsewhere.status_code == 302
    assert elsewhere.wsgi_request.user.username == "lena"


def test_the_suggested_unlock_command_unlocks(settings, team):
    UserFactory(username="lena")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login("lena", "wrong", address="10.0.0.1")
    assert login("lena", PASSWORD, address="10.0.0.1").status_code == 429
    call_command(
        "unlock_login", "--username", "lena", "--ip", "10.0.0.1", "--as", "ada", stdout=StringIO()
    )
    assert login("lena", PASSWORD, address="10.0.0.1").status_code == 302


def test_forwarded_for_is_ignored_unless_configured(settings):
    UserFactory(username="lena")
    client = Client(REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR="203.0.113.7")
    client.post(reverse("login"), {"username": "lena", "password": PASSWORD})
    assert AuditEvent.objects.get(action="auth.login").ip_address == "10.9.9.9"


def test_behind_a_trusted_proxy_the_configured_header_names_the_client(settings):
    settings.CLIENT_IP_HEADER = "X-Forwarded-For"
    UserFactory(username="lena")
    # The proxy appends the address it saw; whatever the client wrote before it is not trusted.
    proxied = {"REMOTE_ADDR": "10.9.9.9", "HTTP_X_FORWARDED_FOR": "1.2.3.4, 203.0.113.7"}
    for _ in range(settings.AXES_FAILURE_LIMIT):
        Client(**proxied).post(reverse("login"), {"username": "lena", "password": "wrong"})
    assert set(
        AuditEvent.objects.filter(action="auth.login_failed").values_list("ip_address", flat=True)
    ) == {"203.0.113.7"}
    # Another client behind the same proxy is not locked out.
    other = {"REMOTE_ADDR": "10.9.9.9", "HTTP_X_FORWARDED_FOR": "198.51.100.8"}
    response = Client(**other).post(reverse("login"), {"username": "lena", "password": PASSWORD})
    assert response.status_code == 302


def test_when_both_rules_lock_the_page_names_the_wider_one(settings, team):
    settings.LOGIN_USERNAME_FAILURE_LIMIT = settings.AXES_FAILURE_LIMIT + 1
    UserFactory(username="lena")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login("lena", "wrong", address="10.0.0.1")
    login("lena", "wrong", address="10.0.0.2")
    page = login("lena", PASSWORD, address="10.0.0.1").content.decode()
    assert "manage.py unlock_login --username lena --as" in page
    call_command("unlock_login", "--username", "lena", "--as", "ada", stdout=StringIO())
    assert login("lena", PASSWORD, address="10.0.0.1").status_code == 302


# -- unlock_login: lifting a lockout through axes, audited -------------------------------------


@pytest.fixture
def os_user(monkeypatch):
    monkeypatch.setattr("getpass.getuser", lambda: "ops-anna")
    return "ops-anna"


def lock_at(address, settings, username="lena"):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(username, "wrong", address=address)
    assert login(username, PASSWORD, address=address).status_code == 429


def unlock(*arguments):
    out = StringIO()
    call_command("unlock_login", *arguments, stdout=out)
    return out.getvalue()


def test_unlock_login_lets_the_user_log_in_again_and_is_audited(settings, team, os_user):
    lena = UserFactory(username="lena")
    lock_at("10.0.0.1", settings)

    out = unlock("--username", "lena", "--ip", "10.0.0.1", "--as", "ada")

    assert "Unlocked lena at 10.0.0.1: 1 lockout record(s) removed" in out
    event = AuditEvent.objects.get(action="auth.unlocked")
    assert event.actor == team.admin.user
    assert event.actor_label == "ada (cli:ops-anna:unlock_login)"
    assert (event.object_type, event.object_id, event.tenant) == ("user", str(lena.pk), None)
    assert event.summary == {"username": "lena", "ip_address": "10.0.0.1", "records_removed": 1}
    assert PASSWORD not in str(event.summary) and "wrong" not in str(event.summary)
    assert login("lena", PASSWORD, address="10.0.0.1").status_code == 302


def test_without_ip_it_lifts_the_name_from_every_address_and_a_superuser_may(settings, os_user):
    UserFactory(username="root", is_superuser=True)  # no membership anywhere
    UserFactory(username="lena")
    per_address = settings.AXES_FAILURE_LIMIT - 1  # the name rule locks, no address does
    addresses = [f"10.0.1.{n}" for n in range(1, 10)]
    sent = 0
    for address in addresses:
        for _ in range(per_address):
            if sent < settings.LOGIN_USERNAME_FAILURE_LIMIT:
                login("lena", "wrong", address=address)
                sent += 1
    assert login("lena", PASSWORD, address="10.0.2.1").status_code == 429

    unlock("--username", "lena", "--as", "root")

    event = AuditEvent.objects.get(action="auth.unlocked")
    assert event.actor_label == "root (cli:ops-anna:unlock_login)"
    assert event.summary["ip_address"] is None and event.summary["records_removed"] >= 1
    assert not AccessAttempt.objects.filter(username="lena").exists()
    assert login("lena", PASSWORD, address="10.0.2.1").status_code == 302


def test_an_unlock_at_one_address_says_when_the_name_is_still_locked_everywhere(
    settings, team, os_user
):
    UserFactory(username="lena")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        login("lena", "wrong", address="10.0.0.2")
    lock_at("10.0.0.1", settings)
    # A lower name-wide limit: the failures from 10.0.0.2 alone now lock the name everywhere.
    settings.LOGIN_USERNAME_FAILURE_LIMIT = settings.AXES_FAILURE_LIMIT - 1

    out = unlock("--username", "lena", "--ip", "10.0.0.1", "--as", "ada")

    assert "still locked from every address" in out
    assert login("lena", PASSWORD, address="10.0.0.1").status_code == 429
    unlock("--username", "lena", "--as", "ada")
    assert login("lena", PASSWORD, address="10.0.0.1").status_code == 302


@pytest.mark.parametrize("actor", ["mia", "oscar", "aude"])
def test_an_actor_who_is_not_an_admin_is_refused_and_nothing_is_reset(
    settings, team, os_user, actor
):
    UserFactory(username="lena")
    lock_at("10.0.0.1", settings)
    before = list(AccessAttempt.objects.values_list("pk", "failures_since_start"))

    with pytest.raises(CommandError, match="Only a superuser or an admin of a tenant"):
        unlock("--username", "lena", "--ip", "10.0.0.1", "--as", actor)

    assert list(AccessAttempt.objects.values_list("pk", "failures_since_start")) == before
    assert not AuditEvent.objects.filter(action="auth.unlocked").exists()
    assert login("lena", PASSWORD, address="10.0.0.1").status_code == 429


def test_an_inactive_admin_is_refused(team, os_user):
    UserFactory(username="lena")
    team.admin.user.is_active = False
    team.admin.user.save()
    with pytest.raises(CommandError, match="No active user named 'ada'"):
        unlock("--username", "lena", "--as", "ada")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--username", "nobody", "--as", "ada"], "No user named 'nobody'"),
        (["--username", "lena", "--as", "nobody"], "No active user named 'nobody'"),
        (["--username", "lena", "--ip", "10.0.0.300", "--as", "ada"], "is not an IP address"),
    ],
)
def test_unknown_names_and_bad_addresses_are_clear_errors(team, os_user, arguments, message):
    UserFactory(username="lena")
    with pytest.raises(CommandError, match=message):
        unlock(*arguments)
    assert not AuditEvent.objects.filter(action="auth.unlocked").exists()
