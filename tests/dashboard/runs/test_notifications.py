"""Who is told by email that an approval waits, and how it was decided (issue 9, item 16).
Tests use Django's locmem backend (mail.outbox); mails leave only once the change committed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import translation

from dashboard.audit.trail import Actor
from dashboard.clock import utc_now
from dashboard.models import Role
from dashboard.preferences.services import preferences_update
from dashboard.runs import services
from dashboard.runs.states import RunState
from tests.factories import MembershipFactory, RunFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]


@pytest.fixture(autouse=True)
def english_request():
    """The language of the request that causes a mail is its fallback: English here, whatever
    an earlier test in this thread left active."""
    with translation.override("en"):
        yield


@pytest.fixture
def connection(team, sandbox_connection):
    return sandbox_connection(team.tenant, "optimove_batch", name="Optimove EU")


def request(team, connection, *, key="k1", role="marketer"):
    return services.run_submit(
        actor=Actor(user=getattr(team, role).user),
        tenant=team.tenant,
        connection=connection,
        operation="optimove_trigger_daily",
        parameters={"wait_time_for_validation_seconds": None},
        idempotency_key=key,
        approval_required=True,
        attestation="All of today's files have finished uploading.",
        utc_date=utc_now().date(),
        check_duplicates=False,
    )


def test_a_request_tells_every_approver_but_the_requester(
    team, other_team, connection, settings, django_capture_on_commit_callbacks
):
    settings.SITE_URL = "https://triggerdesk.example.com"
    MembershipFactory(tenant=team.tenant, role=Role.OPERATOR, user=UserFactory(email=""))
    with django_capture_on_commit_callbacks(execute=True):
        run = request(team, connection, role="operator")  # oscar requests
    recipients = sorted(address for message in mail.outbox for address in message.to)
    # olga (operator) and ada (admin); not oscar himself, not the marketer or the auditor, not
    # a member without an address, nobody of another tenant.
    assert recipients == ["ada@example.com", "olga@example.com"]
    message = mail.outbox[0]
    assert f"Approval needed: run #{run.pk}" in message.subject
    assert "oscar requested run" in message.body and "Optimove EU" in message.body
    assert f"expires at {run.approval_expires_at:%Y-%m-%d %H:%M} UTC" in message.body
    assert f"https://triggerdesk.example.com/t/acme/runs/{run.pk}/" in message.body


def test_nothing_is_sent_before_the_commit_nor_for_a_repeated_form(
    team, connection, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        request(team, connection)
    assert mail.outbox == [] and len(callbacks) == 1  # waits for the commit
    callbacks[0]()
    sent = len(mail.outbox)
    with django_capture_on_commit_callbacks(execute=True):
        request(team, connection)  # the same idempotency key: the same run, no new mail
    assert len(mail.outbox) == sent


def test_the_requester_hears_of_the_approval(team, connection, django_capture_on_commit_callbacks):
    run = request(team, connection)
    with django_capture_on_commit_callbacks(execute=True):
        services.run_approve(
            actor=Actor(user=team.operator.user),
            run=run,
            parameters_hash_seen=run.parameters_hash,
            comment="Files checked",
        )
    (message,) = mail.outbox
    assert message.to == ["mia@example.com"]
    assert f"Run #{run.pk} approved" in message.subject
    assert "oscar approved your request" in message.body and "Files checked" in message.body


def test_the_requester_hears_of_the_rejection_and_why(
    team, connection, django_capture_on_commit_callbacks
):
    run = request(team, connection)
    with django_capture_on_commit_callbacks(execute=True):
        services.run_reject(actor=Actor(user=team.operator.user), run=run, comment="Files late")
    (message,) = mail.outbox
    assert message.to == ["mia@example.com"]
    assert f"Run #{run.pk} rejected" in message.subject
    assert "Their comment: Files late" in message.body
    assert "Nothing was sent." in message.body


def test_the_requester_hears_when_nobody_approved_in_time(team, django_capture_on_commit_callbacks):
    run = RunFactory(
        tenant=team.tenant,
        requested_by=team.marketer.user,
        approval_expires_at=utc_now() - timedelta(minutes=1),
    )
    with django_capture_on_commit_callbacks(execute=True):
        report = services.runs_sweep()
    assert report["expired"] == 1
    run.refresh_from_db()
    assert run.state == RunState.CANCELLED
    (message,) = mail.outbox
    assert message.to == ["mia@example.com"]
    assert "expired unapproved" in message.subject


def test_an_approval_too_late_tells_the_requester_it_expired(
    team, django_capture_on_commit_callbacks
):
    run = RunFactory(
        tenant=team.tenant,
        requested_by=team.marketer.user,
        approval_expires_at=utc_now() - timedelta(minutes=1),
    )
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(services.RunActionError),
    ):
        services.run_approve(
            actor=Actor(user=team.operator.user), run=run, parameters_hash_seen=run.parameters_hash
        )
    assert [message.subject for message in mail.outbox] == [
        f"Run #{run.pk} expired unapproved: {run.name}"
    ]


def test_a_mail_server_that_is_down_does_not_undo_the_request(
    team, connection, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    def refuse(*args, **kwargs):
        raise ConnectionRefusedError("smtp down")

    monkeypatch.setattr("dashboard.runs.notifications.send_mail", refuse)
    with django_capture_on_commit_callbacks(execute=True):
        run = request(team, connection)
    run.refresh_from_db()
    assert run.state == RunState.AWAITING_APPROVAL
    assert "could not send the mail" in caplog.text and "smtp down" in caplog.text


def test_a_stale_approve_tab_is_told_in_plain_words(team):
    run = RunFactory(tenant=team.tenant, state=RunState.SUCCEEDED)
    with pytest.raises(services.RunActionError) as refused:
        services.run_approve(
            actor=Actor(user=team.operator.user), run=run, parameters_hash_seen=run.parameters_hash
        )
    assert str(refused.value) == (
        "There is nothing to approve: this run was already sent and went through."
    )


@pytest.mark.usefixtures("compiled_translations")
def test_each_approver_reads_the_mail_in_their_own_language(
    team, connection, django_capture_on_commit_callbacks
):
    # oscar chose Russian on his Preferences page; ada never chose (the deployment's English).
    preferences_update(actor=Actor(user=team.operator.user), language="ru", time_zone="")
    with django_capture_on_commit_callbacks(execute=True):
        run = request(team, connection)  # mia (marketer) requests
    by_address = {message.to[0]: message for message in mail.outbox}
    russian, english = by_address["oscar@example.com"], by_address["ada@example.com"]
    assert russian.subject == f"Нужно одобрение: запуск №{run.pk}, {run.name}"
    assert f"mia запросил(а) запуск №{run.pk} в пространстве" in russian.body
    assert "Перед отправкой нужно одобрение второго человека." in russian.body
    assert english.subject == f"Approval needed: run #{run.pk}, {run.name}"
    assert "It needs a second person's approval" in english.body
    # The language of the request that caused the mail changes neither.
    assert translation.get_language() in ("en", "en-us")


@pytest.mark.usefixtures("compiled_translations")
def test_the_requester_reads_the_decision_in_their_language(
    team, connection, django_capture_on_commit_callbacks
):
    preferences_update(actor=Actor(user=team.marketer.user), language="ru", time_zone="")
    run = request(team, connection)
    with django_capture_on_commit_callbacks(execute=True):
        services.run_reject(actor=Actor(user=team.operator.user), run=run, comment="Files late")
    (message,) = mail.outbox
    assert message.subject == f"Запуск №{run.pk} отклонён: {run.name}"
    assert "Комментарий: Files late" in message.body
    assert "Ничего не отправлено." in message.body
