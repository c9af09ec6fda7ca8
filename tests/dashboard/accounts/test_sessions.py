"""Sessions in the database, read through Redis (dashboard/accounts/sessions.py): a logout ends the
session everywhere, and Redis trouble never fails a request."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.urls import reverse

from dashboard.runs.states import RunState
from tests.factories import PASSWORD, RunFactory

pytestmark = pytest.mark.django_db


def live_url(team) -> str:
    run = RunFactory(tenant=team.tenant, state=RunState.ACCEPTED)
    return reverse("run_detail", args=["acme", run.pk])


def test_sessions_are_read_through_redis(team, django_assert_max_num_queries):
    assert settings.SESSION_ENGINE == "dashboard.accounts.sessions"
    client = team.client_for("operator")
    url = live_url(team)
    # membership and user together, then the run: the session itself costs no query
    with django_assert_max_num_queries(2):
        assert client.get(url, HTTP_HX_REQUEST="true").status_code == 200


def test_a_logout_ends_the_session_for_the_next_poll(team):
    client = team.client_for("operator")
    url = live_url(team)
    assert client.get(url, HTTP_HX_REQUEST="true").status_code == 200
    stolen_cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    client.post(reverse("logout"))
    assert not Session.objects.filter(session_key=stolen_cookie).exists()
    from django.test import Client

    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = stolen_cookie
    response = replay.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 302 and "/login" in response["Location"]


def test_pages_answer_from_the_database_while_redis_is_unreachable(team, settings):
    client = team.client_for("operator")
    url = live_url(team)
    settings.CACHES = {
        **settings.CACHES,
        "sessions": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        },
    }
    assert client.get(url, HTTP_HX_REQUEST="true").status_code == 200
    assert client.get(reverse("tenant_home", args=["acme"])).status_code == 200
    client.post(reverse("logout"))
    assert client.get(url, HTTP_HX_REQUEST="true").status_code == 302
    login = client.post(reverse("login"), {"username": "oscar", "password": PASSWORD})
    assert login.status_code == 302
    assert client.get(url, HTTP_HX_REQUEST="true").status_code == 200
