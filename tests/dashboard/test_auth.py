import pytest
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
