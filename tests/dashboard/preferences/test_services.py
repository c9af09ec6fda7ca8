"""Saving a person's language and time zone: checked, audited, nothing changed on bad input."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from dashboard.audit.trail import Actor
from dashboard.models import AuditEvent
from dashboard.preferences.models import PersonalPreference
from dashboard.preferences.selectors import language_for_user, preferences_for_user
from dashboard.preferences.services import preferences_update

pytestmark = pytest.mark.django_db


def test_a_choice_is_saved_and_audited_with_before_and_after(team):
    user = team.marketer.user
    preferences_update(actor=Actor(user=user), language="ru", time_zone="Europe/Moscow")
    assert preferences_for_user(user).time_zone == "Europe/Moscow"
    event = AuditEvent.objects.get(action="preferences.update")
    assert event.actor_label == "mia"
    assert event.summary == {
        "before": {"language": "", "time_zone": ""},
        "after": {"language": "ru", "time_zone": "Europe/Moscow"},
    }
    # Saving the same again changes nothing and records nothing.
    preferences_update(actor=Actor(user=user), language="ru", time_zone="Europe/Moscow")
    assert AuditEvent.objects.filter(action="preferences.update").count() == 1


@pytest.mark.parametrize(
    ("language", "time_zone", "code"),
    [("de", "", "language"), ("", "Mars/Olympus", "time_zone"), ("", "localtime", "time_zone")],
)
def test_a_bad_value_is_refused_and_changes_nothing(team, language, time_zone, code):
    with pytest.raises(ValidationError) as refused:
        preferences_update(
            actor=Actor(user=team.marketer.user), language=language, time_zone=time_zone
        )
    assert list(refused.value.message_dict) == [code]
    assert not PersonalPreference.objects.exists()
    assert not AuditEvent.objects.filter(action="preferences.update").exists()


def test_an_email_speaks_the_persons_language_else_the_requesting_browsers(team):
    user = team.operator.user
    assert language_for_user(user, fallback="ru") == "ru"
    assert language_for_user(user) == "en"
    preferences_update(actor=Actor(user=user), language="en", time_zone="")
    assert language_for_user(user, fallback="ru") == "en"
