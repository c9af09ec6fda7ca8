"""The Preferences page and what it changes on every page: the person's language beats the
browser's, the browser's is the default, the chosen zone shows beside UTC, numbers and dates
follow the language (issue 26, item 4)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core import mail

from dashboard.audit.trail import Actor
from dashboard.preferences.services import preferences_update
from tests.factories import RunFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("compiled_translations")]


def test_the_browsers_language_is_the_default(team, client):
    russian = client.get("/login/", HTTP_ACCEPT_LANGUAGE="ru-RU,ru;q=0.9,en;q=0.5")
    assert '<html lang="ru">' in russian.content.decode()
    assert "Войти" in russian.content.decode()
    assert russian["Content-Language"] == "ru"
    english = client.get("/login/", HTTP_ACCEPT_LANGUAGE="en-GB")
    assert '<html lang="en">' in english.content.decode()
    member = team.client_for("operator").get("/t/acme/", HTTP_ACCEPT_LANGUAGE="ru")
    assert "Ничто никого не ждёт." in member.content.decode()


def test_the_persons_choice_beats_the_browser_at_once_and_at_the_next_login(team):
    client = team.client_for("operator")
    saved = client.post(
        "/account/preferences/",
        {"language": "ru", "time_zone": "Asia/Yekaterinburg"},
        HTTP_ACCEPT_LANGUAGE="en",
        follow=True,
    )
    page = saved.content.decode()
    assert '<html lang="ru">' in page and "Настройки сохранены." in page
    assert 'data-time-zone="Asia/Yekaterinburg"' in page
    again = team.client_for("operator").get("/t/acme/", HTTP_ACCEPT_LANGUAGE="en-US")
    assert '<html lang="ru">' in again.content.decode()

    # Back to "as my browser says".
    client.post("/account/preferences/", {"language": "", "time_zone": ""})
    assert '<html lang="en">' in client.get("/t/acme/", HTTP_ACCEPT_LANGUAGE="en").content.decode()


def test_a_bad_choice_is_a_form_error_and_saves_nothing(team):
    client = team.client_for("marketer")
    response = client.post("/account/preferences/", {"language": "xx", "time_zone": "Nowhere/City"})
    assert response.status_code == 422
    page = response.content.decode()
    assert "Select a valid choice" in page
    assert "Choose a time zone from the list" in page
    assert "data-time-zone" not in page


def test_times_show_the_chosen_zone_beside_utc_and_numbers_follow_the_language(team):
    preferences_update(actor=Actor(user=team.admin.user), language="ru", time_zone="Europe/Moscow")
    requested = datetime(2026, 12, 7, 2, 53, tzinfo=UTC)
    RunFactory(tenant=team.tenant, requested_by=team.marketer.user, requested_at=requested)
    page = team.client_for("admin").get("/t/acme/").content.decode()
    # UTC as always, and the person's own time beside it, written the Russian way.
    assert "2026-12-07 02:53 UTC" in page
    assert "(07.12.2026 05:53 MSK)" in page
    preferences_update(actor=Actor(user=team.auditor.user), language="en", time_zone="Asia/Tokyo")
    tokyo = team.client_for("auditor").get("/t/acme/").content.decode()
    assert "2026-12-07 02:53 UTC" in tokyo and "(2026-12-07 11:53 JST)" in tokyo
    english = team.client_for("operator").get("/t/acme/").content.decode()
    assert "2026-12-07 02:53 UTC" in english
    # Without a chosen zone the browser's is filled in by static/js/app.js.
    assert 'data-local-of="2026-12-07T02:53:00+00:00"' in english

    from django.utils import translation
    from django.utils.formats import number_format

    with translation.override("ru"):
        assert number_format(127000, force_grouping=True) == "127\xa0000"
    with translation.override("en"):
        assert number_format(127000, force_grouping=True) == "127,000"


def test_a_password_reset_email_is_in_the_language_of_the_browser_that_asked(team, monkeypatch):
    from django.test import Client, TestCase

    from dashboard.accounts import tasks

    task = tasks.send_password_reset_email
    # As a worker would run it (see tests/dashboard/accounts/test_password_reset.py).
    monkeypatch.setattr(task, "delay", lambda user_id, language="": task(user_id, language))
    user = team.auditor.user
    user.email = "aude@example.com"
    user.save()
    with TestCase.captureOnCommitCallbacks(execute=True):
        Client(HTTP_ACCEPT_LANGUAGE="ru").post(
            "/account/password/forgot/", {"email": "aude@example.com"}
        )
    assert [message.subject for message in mail.outbox] == ["Сброс пароля TriggerDesk"]
    assert "Задайте новый пароль по этой ссылке" in mail.outbox[0].body
