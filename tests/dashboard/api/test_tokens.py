"""API tokens: stored hashed, shown once, revoked and expired at once, acting as their person."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client

from dashboard.api.models import ApiToken
from dashboard.api.services import token_hash
from dashboard.clock import utc_now
from dashboard.models import AuditEvent, Membership

pytestmark = pytest.mark.django_db


def test_only_the_hash_is_stored_and_the_secret_has_a_recognisable_prefix(make_token):
    token, client = make_token("operator")
    assert client.secret.startswith("tdk_") and len(client.secret) > 40
    stored = ApiToken.objects.get(pk=token.pk)
    assert stored.token_hash == token_hash(client.secret)
    assert client.secret not in str(ApiToken.objects.filter(pk=token.pk).values().first())
    assert stored.prefix == client.secret[:12]


def test_a_token_works_and_records_its_last_use(make_token, daily_connection):
    token, client = make_token("operator")
    assert client.get("daily-trigger").status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "unauthenticated"),
        ("Bearer tdk_not-a-real-token", "invalid_token"),
        ("Bearer ghp_something", "invalid_token"),
        ("Basic abc", "unauthenticated"),
    ],
)
def test_missing_or_unknown_tokens_are_401_problems(team, header, code):
    headers = {"Authorization": header} if header else {}
    response = Client().get("/api/v1/t/acme/runs", headers=headers)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json()["code"] == code


def test_revocation_takes_effect_at_the_next_request(make_token, team):
    token, client = make_token("operator")
    assert client.get("runs").status_code == 200
    owner = Client()
    owner.force_login(team.operator.user)
    page = owner.post(f"/t/acme/api-tokens/{token.pk}/revoke/")
    assert page.status_code == 302
    response = client.get("runs")
    assert response.status_code == 401
    assert response.json()["code"] == "token_revoked"


def test_expiry_takes_effect_at_once(make_token, monkeypatch):
    _token, client = make_token("operator", expires_at=utc_now() + timedelta(minutes=5))
    assert client.get("runs").status_code == 200
    later = utc_now() + timedelta(minutes=5, seconds=1)
    monkeypatch.setattr("django.utils.timezone.now", lambda: later)
    response = client.get("runs")
    assert response.status_code == 401
    assert response.json()["code"] == "token_expired"


def test_a_removed_member_or_deactivated_account_cannot_use_a_token(make_token, team):
    _, client = make_token("operator")
    _, other = make_token("marketer")
    Membership.objects.filter(pk=team.operator.pk).delete()
    assert client.get("runs").status_code == 401
    team.marketer.user.is_active = False
    team.marketer.user.save()
    assert other.get("runs").status_code == 401


def test_a_token_acts_with_the_persons_current_role(make_token, team, daily_connection):
    _, client = make_token("auditor")
    response = client.post("daily-trigger", {"files_uploaded_attested": True})
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    team.auditor.role = "marketer"
    team.auditor.save()
    response = client.post("daily-trigger", {"files_uploaded_attested": True})
    assert response.status_code == 201


def test_a_token_does_not_reach_another_tenant(make_token, other_team):
    _, client = make_token("admin")
    response = Client().get(
        "/api/v1/t/other/runs", headers={"Authorization": f"Bearer {client.secret}"}
    )
    assert response.status_code == 404
    assert response.json()["code"] == "tenant_not_found"


def test_every_acting_call_is_audited_with_the_token_name_never_its_value(
    make_token, daily_connection
):
    _token, client = make_token("marketer", name="airflow-daily")
    response = client.post("daily-trigger", {"files_uploaded_attested": True})
    assert response.status_code == 201
    refused = client.post("daily-trigger", {"files_uploaded_attested": False})
    assert refused.status_code == 422
    assert client.post("daily-trigger", {"colour": "red"}).status_code == 422
    assert client.post("daily-trigger", raw="{oops").status_code == 400
    calls = AuditEvent.objects.filter(action="api.called").order_by("id")
    assert [event.summary["status"] for event in calls] == [201, 422, 422, 400]
    assert calls[0].summary["endpoint"] == "daily_trigger_request"
    assert calls[2].summary["endpoint"] == "POST api/v1/t/<tenant_slug>/daily-trigger"
    assert all(event.summary["client"] == "airflow-daily" for event in calls)
    requested = AuditEvent.objects.get(action="run.requested")
    assert "airflow-daily" in requested.actor_label
    everything = str(list(AuditEvent.objects.values()))
    assert client.secret not in everything
    assert client.secret[4:20] not in everything


def test_tokens_page_creates_a_token_shown_once_and_lists_it(team):
    browser = Client()
    browser.force_login(team.marketer.user)
    page = browser.get("/t/acme/api-tokens/")
    assert page.status_code == 200
    created = browser.post("/t/acme/api-tokens/", {"name": "cron job", "expires_on": ""})
    assert created.status_code == 201
    token = ApiToken.objects.get(name="cron job")
    html = created.content.decode()
    secret = html.split('class="token-secret">')[1].split("<")[0]
    assert secret.startswith("tdk_") and token_hash(secret) == token.token_hash
    assert (
        created["Cache-Control"].startswith("max-age=0") or "no-store" in created["Cache-Control"]
    )
    again = browser.get("/t/acme/api-tokens/").content.decode()
    assert "cron job" in again and secret not in again and token.prefix in again
    duplicate = browser.post("/t/acme/api-tokens/", {"name": "cron job"})
    assert duplicate.status_code == 200 and "already have a token" in duplicate.content.decode()
    assert "<script" not in again.split("<main>")[1]


def test_one_cannot_revoke_someone_elses_token(make_token, team):
    token, _ = make_token("operator")
    browser = Client()
    browser.force_login(team.marketer.user)
    assert browser.post(f"/t/acme/api-tokens/{token.pk}/revoke/").status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_the_revoke_button_asks_first_on_the_rendered_page(make_token, team):
    token, _ = make_token("marketer", name="cron job")
    browser = Client()
    browser.force_login(team.marketer.user)
    html = browser.get("/t/acme/api-tokens/").content.decode()
    form = re.search(rf'<form [^>]*id="revoke-token-{token.pk}"[^>]*>.*?</form>', html, re.DOTALL)
    assert form, "no revoke form for the token"
    assert f'action="/t/acme/api-tokens/{token.pk}/revoke/"' in form.group(0)
    assert 'data-confirm="Revoke the token cron job? Programs using it stop working' in form.group(
        0
    )
    assert ">Revoke</button>" in form.group(0)
