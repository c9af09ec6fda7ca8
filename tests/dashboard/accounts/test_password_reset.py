"""Forgot password (dashboard/accounts/password_reset.py): a one-time, expiring reset link by email under
SITE_URL, the same answer whether or not the address has an account, rate limits per email and
per client address, audited, and the other sessions end. No token in an audit row or a log.

The email leaves from a Celery task enqueued after the commit: `ask` runs the request's on-commit
callbacks, and the autouse fixture `reset_emails_sent_at_once` runs each enqueued task in the test
process, so mail.outbox holds what the worker would have sent."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.core import mail
from django.test import Client, TestCase
from django.urls import reverse

from dashboard.accounts import tasks
from dashboard.clock import utc_now
from dashboard.models import AuditEvent
from dashboard.project.celery import app as celery_app
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "a-long-new-passphrase-42"
SITE = "https://triggerdesk.example.com"


@pytest.fixture(autouse=True)
def site_url(settings):
    settings.SITE_URL = SITE


@pytest.fixture(autouse=True)
def reset_emails_sent_at_once(monkeypatch):
    """An enqueued reset email is sent at once, in the test process, as a worker would: the task
    is called directly (Celery's eager mode would run the worker's task_postrun hook, which
    closes the test's database connection)."""
    task = tasks.send_password_reset_email
    monkeypatch.setattr(task, "delay", lambda user_id, language="": task(user_id, language))


def post(email: str, *, address: str = "10.0.0.5", **headers):
    return Client(REMOTE_ADDR=address, **headers).post(reverse("password_reset"), {"email": email})


def ask(email: str, *, address: str = "10.0.0.5", **headers):
    """Ask for a reset link, then run what the request enqueued after its commit (the emails)."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return post(email, address=address, **headers)


def link_in(message) -> str:
    match = re.search(re.escape(SITE) + r"(/account/password/reset/[^\s]+/)", message.body)
    assert match, message.body
    return match.group(1)


def reset(link: str, password: str = NEW_PASSWORD) -> tuple[Client, object]:
    client = Client(REMOTE_ADDR="10.0.0.9")
    form_page = client.get(link, follow=True)
    response = client.post(
        form_page.redirect_chain[-1][0] if form_page.redirect_chain else link,
        {"new_password1": password, "new_password2": password},
    )
    return client, response


def test_the_login_page_links_to_the_forgot_password_page():
    page = Client().get(reverse("login")).content.decode()
    assert reverse("password_reset") in page and "Forgot your password?" in page
    form = Client().get(reverse("password_reset")).content.decode()
    assert 'class="topbar"' in form and "for 60 minutes" in form


def test_a_reset_link_is_emailed_under_site_url_whatever_the_host_header():
    UserFactory(username="lena", email="lena@example.com")
    response = ask("Lena@Example.com", HTTP_HOST="localhost")
    assert response.status_code == 302
    assert response["Location"] == reverse("password_reset_done")
    (message,) = mail.outbox
    assert message.to == ["lena@example.com"]
    assert "lena" in message.body and "works once, for 60 minutes" in message.body
    assert link_in(message).startswith("/account/password/reset/")
    assert "localhost" not in message.body and "testserver" not in message.body


def test_the_answer_is_the_same_whether_or_not_the_address_has_an_account():
    UserFactory(username="lena", email="lena@example.com")
    known = ask("lena@example.com")
    unknown = ask("nobody@example.com")
    assert (known.status_code, known["Location"]) == (unknown.status_code, unknown["Location"])
    page = Client().get(known["Location"]).content.decode()
    assert "If an account uses that address" in page and "60 minutes" in page
    assert len(mail.outbox) == 1
    # The audit trail (for admins) records both requests and what happened.
    rows = {
        row.summary["email"]: row
        for row in AuditEvent.objects.filter(action="auth.password_reset_requested")
    }
    assert rows["lena@example.com"].summary["accounts_emailed"] == 1
    assert rows["nobody@example.com"].summary["accounts_emailed"] == 0
    assert rows["nobody@example.com"].ip_address == "10.0.0.5"


def test_the_request_sends_no_email_itself_and_enqueues_one_task_per_account(monkeypatch):
    lena = UserFactory(username="lena", email="lena@example.com")
    lena_ops = UserFactory(username="lena-ops", email="Lena@Example.com")
    UserFactory(username="other", email="other@example.com")
    enqueued: list[int] = []
    monkeypatch.setattr(
        tasks.send_password_reset_email,
        "delay",
        lambda user_id, language="": enqueued.append(user_id),
    )

    with TestCase.captureOnCommitCallbacks(execute=False) as callbacks:
        response = post("lena@example.com")
    assert response.status_code == 302
    assert enqueued == []  # nothing before the commit
    for callback in callbacks:
        callback()
    assert sorted(enqueued) == sorted([lena.pk, lena_ops.pk])
    assert mail.outbox == []  # the request itself sent nothing: the worker does
    route = celery_app.amqp.router.route({}, tasks.send_password_reset_email.name)
    assert route["queue"].name == "poll"

    for user_id in enqueued:
        assert tasks.send_password_reset_email(user_id) == "sent"
    assert sorted(message.to[0] for message in mail.outbox) == [
        "Lena@Example.com",
        "lena@example.com",
    ]
    assert all(link_in(message) for message in mail.outbox)


def test_an_unknown_address_enqueues_nothing_and_gets_the_same_page(monkeypatch):
    UserFactory(username="lena", email="lena@example.com")
    enqueued: list[int] = []
    monkeypatch.setattr(
        tasks.send_password_reset_email,
        "delay",
        lambda user_id, language="": enqueued.append(user_id),
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        unknown = post("nobody@example.com")
    assert enqueued == [] and mail.outbox == []
    with TestCase.captureOnCommitCallbacks(execute=True):
        known = post("lena@example.com")
    assert len(enqueued) == 1
    assert (unknown.status_code, unknown["Location"]) == (known.status_code, known["Location"])
    assert unknown.content == known.content


def test_the_task_rechecks_the_account_and_makes_the_token_when_it_sends(monkeypatch):
    lena = UserFactory(username="lena", email="lena@example.com")
    gone = UserFactory(username="gone", email="gone@example.com")
    enqueued: list[int] = []
    monkeypatch.setattr(
        tasks.send_password_reset_email,
        "delay",
        lambda user_id, language="": enqueued.append(user_id),
    )
    for email in ("lena@example.com", "gone@example.com"):
        with TestCase.captureOnCommitCallbacks(execute=True):
            post(email)
    # Between the request and the worker: one account is deactivated, the other logs in (which
    # would kill a token made at request time).
    gone.is_active = False
    gone.save()
    lena.last_login = utc_now()
    lena.save()

    assert [tasks.send_password_reset_email(user_id) for user_id in enqueued] == [
        "sent",
        "skipped",
    ]
    (message,) = mail.outbox
    assert message.to == ["lena@example.com"]
    _, response = reset(link_in(message))
    assert response.status_code == 302


def test_a_failed_send_is_logged_without_the_address_or_the_link(monkeypatch, caplog):
    import smtplib

    lena = UserFactory(username="lena", email="lena@example.com")

    def refuse(*args, **kwargs):
        raise smtplib.SMTPRecipientsRefused({"lena@example.com": (550, b"no such user")})

    monkeypatch.setattr("dashboard.accounts.password_reset.send_mail", refuse)
    caplog.set_level(logging.DEBUG)
    response = ask("lena@example.com")
    assert response.status_code == 302 and mail.outbox == []
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert f"password reset email to user {lena.pk} not sent: SMTPRecipientsRefused" in logged
    assert "lena@example.com" not in logged and "/account/password/reset/" not in logged


def test_the_link_sets_a_new_password_logs_in_and_is_audited_without_the_token(caplog):
    caplog.set_level(logging.DEBUG)
    lena = UserFactory(username="lena", email="lena@example.com")
    ask("lena@example.com")
    link = link_in(mail.outbox[0])
    token = link.rstrip("/").rsplit("/", 1)[1]

    client, response = reset(link)

    assert response.status_code == 302
    lena.refresh_from_db()
    assert lena.check_password(NEW_PASSWORD)
    assert client.get("/").wsgi_request.user == lena
    event = AuditEvent.objects.get(action="user.password_reset")
    assert (event.actor, event.ip_address, event.object_id) == (lena, "10.0.0.9", str(lena.pk))
    rows = AuditEvent.objects.values_list("summary", "actor_label", "object_id")
    assert token not in str(list(rows)) and NEW_PASSWORD not in str(list(rows))
    logged = [str(record.__dict__) + record.getMessage() for record in caplog.records]
    assert any("/account/password/reset/" in line for line in logged)
    assert not [line for line in logged if token in line]


def test_the_link_works_once():
    lena = UserFactory(username="lena", email="lena@example.com")
    ask("lena@example.com")
    link = link_in(mail.outbox[0])
    reset(link)
    _, response = reset(link, password="another-long-passphrase-7")
    assert "This link cannot be used" in response.content.decode()
    lena.refresh_from_db()
    assert lena.check_password(NEW_PASSWORD)


def test_an_expired_link_is_refused(monkeypatch):
    lena = UserFactory(username="lena", email="lena@example.com")
    ask("lena@example.com")
    link = link_in(mail.outbox[0])
    later = datetime.now() + timedelta(minutes=61)
    monkeypatch.setattr(default_token_generator, "_now", lambda: later)
    _, response = reset(link)
    assert "This link cannot be used" in response.content.decode()
    lena.refresh_from_db()
    assert lena.check_password(PASSWORD)
    assert not AuditEvent.objects.filter(action="user.password_reset").exists()


def test_a_reset_logs_out_the_accounts_other_sessions(team):
    elsewhere = team.client_for("marketer")
    home = reverse("tenant_home", kwargs={"tenant_slug": team.tenant.slug})
    assert elsewhere.get(home).status_code == 200
    ask(team.marketer.user.email)
    reset(link_in(mail.outbox[0]))
    response = elsewhere.get(home)
    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_a_reset_gets_a_locked_out_person_back_in(settings):
    UserFactory(username="lena", email="lena@example.com")
    for address in ("10.0.1.1", "10.0.1.2"):
        for _ in range(settings.AXES_FAILURE_LIMIT):
            Client(REMOTE_ADDR=address).post(
                reverse("login"), {"username": "lena", "password": "wrong"}
            )
    locked = Client().post(reverse("login"), {"username": "lena", "password": PASSWORD})
    assert locked.status_code == 429 and reverse("password_reset") in locked.content.decode()
    ask("lena@example.com")
    _, response = reset(link_in(mail.outbox[0]))
    assert response.status_code == 302
    again = Client().post(reverse("login"), {"username": "lena", "password": NEW_PASSWORD})
    assert again.status_code == 302


def test_requests_for_one_email_are_rate_limited_whether_or_not_it_has_an_account(settings):
    settings.PASSWORD_RESET_REQUESTS_PER_EMAIL_PER_HOUR = 2
    UserFactory(username="lena", email="lena@example.com")
    for email in ("lena@example.com", "nobody@example.com"):
        for number in range(2):
            assert ask(email, address=f"10.0.2.{number}").status_code == 302
        refused = ask(email.upper(), address="10.0.2.9")  # the same address in other case
        assert refused.status_code == 429
        assert "Too many reset requests" in refused.content.decode()
        assert "Retry-After" in refused
    assert len(mail.outbox) == 2
    refusals = AuditEvent.objects.filter(
        action="auth.password_reset_requested", summary__rate_limited=True
    )
    assert refusals.count() == 2


def test_the_rate_limit_frees_an_hour_after_the_requests_it_counts(settings, monkeypatch):
    settings.PASSWORD_RESET_REQUESTS_PER_EMAIL_PER_HOUR = 1
    UserFactory(username="lena", email="lena@example.com")
    assert ask("lena@example.com").status_code == 302
    refused = ask("lena@example.com")
    assert refused.status_code == 429 and 3500 < int(refused["Retry-After"]) <= 3600
    assert "try again in 60 minutes" in refused.content.decode()
    later = utc_now() + timedelta(minutes=61)
    monkeypatch.setattr("dashboard.accounts.password_reset.utc_now", lambda: later)
    assert ask("lena@example.com").status_code == 302
    assert len(mail.outbox) == 2


def test_requests_from_one_address_are_rate_limited(settings):
    settings.PASSWORD_RESET_REQUESTS_PER_ADDRESS_PER_HOUR = 2
    UserFactory(username="lena", email="lena@example.com")
    assert ask("a@example.com").status_code == 302
    assert ask("b@example.com").status_code == 302
    assert ask("lena@example.com").status_code == 429
    assert mail.outbox == []
    assert ask("lena@example.com", address="10.0.0.6").status_code == 302
    assert len(mail.outbox) == 1


def test_a_bad_address_is_a_form_error():
    response = ask("not-an-address")
    assert response.status_code == 200
    assert "Enter a valid email address" in response.content.decode()
    assert not AuditEvent.objects.filter(action="auth.password_reset_requested").exists()


def test_an_account_without_a_password_or_inactive_gets_no_email():
    UserFactory(username="invited", email="invited@example.com", password=None)
    UserFactory(username="gone", email="gone@example.com", is_active=False)
    for email in ("invited@example.com", "gone@example.com"):
        assert ask(email).status_code == 302
    assert mail.outbox == []
