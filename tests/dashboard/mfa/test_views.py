"""The second factor in pages: the check after logging in, a tenant that requires one, the
step-up before approving (in place, through htmx), Account security."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dashboard.clock import utc_now
from dashboard.mfa import session_state
from dashboard.models import AuditEvent
from dashboard.runs.states import RunState
from tests.dashboard.mfa.conftest import add_app
from tests.factories import RunFactory

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def logged_in_with_app(team, role="operator"):
    """A client of `role` with an authenticator app, past the login check long ago (so the next
    approval needs a step-up)."""
    membership = getattr(team, role)
    device = add_app(membership.user)
    client = team.client_for(role)
    session = client.session
    session[session_state.STATE_KEY] = {
        "user": str(membership.user.pk),
        "enrolled": True,
        "passed_at": (utc_now() - timedelta(minutes=11)).timestamp(),
    }
    session.save()
    return client, device


def awaiting(team):
    return RunFactory(
        tenant=team.tenant, state=RunState.AWAITING_APPROVAL, requested_by=team.marketer.user
    )


def test_login_with_an_app_asks_for_its_code_before_any_page(team, totp_clock):
    device = add_app(team.operator.user)
    client = team.client_for("operator")

    response = client.get("/t/acme/runs/")
    assert response.status_code == 302
    assert response["Location"] == "/account/second-factor/?next=%2Ft%2Facme%2Fruns%2F"
    assert client.get("/t/acme/runs/", **HTMX)["HX-Redirect"].startswith("/account/second-factor/")

    wrong = client.post("/account/second-factor/", {"second_factor_code": "12345x"})
    assert wrong.status_code == 422
    assert "This code is not right" in wrong.content.decode()
    assert AuditEvent.objects.get(action="mfa.login_check_failed").summary["reason"] == "wrong_code"
    device.throttle_reset()

    passed = client.post(
        "/account/second-factor/",
        {"second_factor_code": totp_clock.code(device), "next": "/t/acme/runs/"},
    )
    assert passed.status_code == 302 and passed["Location"] == "/t/acme/runs/"
    assert client.get("/t/acme/runs/").status_code == 200
    assert AuditEvent.objects.get(action="mfa.login_check").summary["factor"] == (
        "authenticator_app"
    )


def test_a_person_without_a_factor_logs_in_and_approves_as_before(team):
    client = team.client_for("operator")
    run = awaiting(team)
    assert client.get("/t/acme/").status_code == 200
    response = client.post(
        f"/t/acme/runs/{run.pk}/approve/", {"parameters_hash": run.parameters_hash}, **HTMX
    )
    assert response["HX-Redirect"] == f"/t/acme/runs/{run.pk}/"
    run.refresh_from_db()
    assert run.state == RunState.QUEUED


def test_an_approval_asks_for_a_fresh_check_in_place_then_approves(team, totp_clock):
    client, device = logged_in_with_app(team)
    run = awaiting(team)
    url = f"/t/acme/runs/{run.pk}/approve/"
    fields = {"parameters_hash": run.parameters_hash, "comment": "Audience checked"}

    asked = client.post(url, fields, **HTMX)
    page = asked.content.decode()
    assert asked.status_code == 200 and 'id="step-up-form"' in page
    assert "<html" not in page  # the fragment, in place of the approve form
    assert f'value="{run.parameters_hash}"' in page and 'value="Audience checked"' in page
    run.refresh_from_db()
    assert run.state == RunState.AWAITING_APPROVAL

    wrong = client.post(url, {**fields, "second_factor_code": "000000"}, **HTMX)
    assert "This code is not right" in wrong.content.decode()
    failed = AuditEvent.objects.get(action="mfa.step_up_failed")
    assert (failed.tenant, failed.summary["reason"]) == (team.tenant, "wrong_code")
    run.refresh_from_db()
    assert run.state == RunState.AWAITING_APPROVAL
    device.throttle_reset()

    code = totp_clock.code(device)
    approved = client.post(url, {**fields, "second_factor_code": code}, **HTMX)
    assert approved["HX-Redirect"] == f"/t/acme/runs/{run.pk}/"
    run.refresh_from_db()
    assert run.state == RunState.QUEUED
    assert run.approvals.get().comment == "Audience checked"
    step_up = AuditEvent.objects.get(action="mfa.step_up")
    assert step_up.summary["for"] == url and step_up.summary["factor"] == "authenticator_app"
    detail = client.get(f"/t/acme/runs/{run.pk}/").content.decode()
    assert "Approved. The run is queued" in detail


def test_a_replayed_code_approves_nothing(team, totp_clock):
    client, device = logged_in_with_app(team)
    first, second = awaiting(team), awaiting(team)
    code = totp_clock.code(device)
    client.post(
        f"/t/acme/runs/{first.pk}/approve/",
        {"parameters_hash": first.parameters_hash, "second_factor_code": code},
    )
    # Ten minutes later the same code (the same time step on the app's clock) comes again.
    session = client.session
    session[session_state.STATE_KEY]["passed_at"] -= 11 * 60
    session.save()
    replayed = client.post(
        f"/t/acme/runs/{second.pk}/approve/",
        {"parameters_hash": second.parameters_hash, "second_factor_code": code},
    )
    assert replayed.status_code == 422
    assert "This code was already used" in replayed.content.decode()
    second.refresh_from_db()
    assert second.state == RunState.AWAITING_APPROVAL
    event = AuditEvent.objects.get(action="mfa.step_up_failed")
    assert event.summary == {
        "for": f"/t/acme/runs/{second.pk}/approve/",
        "reason": "replayed_code",
        "attack": True,
    }


def test_the_step_up_covers_the_daily_trigger_and_altcraft_approvals(team):
    client, _device = logged_in_with_app(team)
    daily = client.post("/t/acme/batch/daily/999999/approve/", {"parameters_hash": "x"}, **HTMX)
    assert 'id="step-up-form"' in daily.content.decode()
    launch = client.post("/t/acme/campaigns/altcraft/launches/999999/approve/", {}, **HTMX)
    # Asked before anything else is looked at: nothing about the launch is told before it.
    assert 'id="step-up-form"' in launch.content.decode()


def test_a_tenant_requiring_a_factor_sends_operators_without_one_to_set_it_up(team):
    team.tenant.require_second_factor = True
    team.tenant.save()
    operator = team.client_for("operator")
    response = operator.get("/t/acme/runs/")
    assert response.status_code == 302
    assert response["Location"] == "/account/security/?next=%2Ft%2Facme%2Fruns%2F"
    page = operator.get(response["Location"]).content.decode()
    assert "Acme Sports requires a second factor for operators and admins" in page
    # A marketer does not approve: the setting does not apply to them.
    assert team.client_for("marketer").get("/t/acme/runs/").status_code == 200


def test_the_tenant_setting_is_on_the_settings_page_and_audited(team):
    admin = team.client_for("admin")
    response = admin.post(
        "/t/acme/settings/",
        {
            "approval_required": "on",
            "approval_valid_minutes": 120,
            "duplicate_window_minutes": 60,
            "require_second_factor": "on",
        },
    )
    assert response.status_code == 302
    team.tenant.refresh_from_db()
    assert team.tenant.require_second_factor
    event = AuditEvent.objects.get(action="tenant.settings_changed")
    assert event.summary["require_second_factor"] == {"from": False, "to": True}
    # The admin has no factor yet: from now on the tenant's pages send them to set one up.
    assert admin.get("/t/acme/settings/")["Location"].startswith("/account/security/")


def test_setting_up_an_app_shows_the_secret_once_then_recovery_codes(team, totp_clock):
    client = team.client_for("operator")
    page = client.post("/account/security/app/start/").content.decode()
    assert 'id="totp-qr"' in page and 'src="data:image/svg+xml' in page
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.get(user=team.operator.user)
    confirmed = client.post(
        "/account/security/app/confirm/", {"code": totp_clock.code(device), "name": "Phone"}
    )
    page = confirmed.content.decode()
    assert confirmed.status_code == 200 and 'id="recovery-codes"' in page
    assert 'id="totp-secret"' not in page
    assert client.get("/account/security/").content.decode().count("<code>") == 0
    assert AuditEvent.objects.filter(action="mfa.recovery_codes_generated").count() == 1


def test_removing_a_factor_needs_a_fresh_check(team, totp_clock):
    client, device = logged_in_with_app(team)
    url = f"/account/security/authenticator_app/{device.pk}/remove/"
    asked = client.post(url, **HTMX)
    assert 'id="step-up-form"' in asked.content.decode()
    assert device.__class__.objects.filter(pk=device.pk).exists()
    removed = client.post(url, {"second_factor_code": totp_clock.code(device)}, **HTMX)
    assert removed["HX-Redirect"] == "/account/security/"
    assert not device.__class__.objects.filter(pk=device.pk).exists()
    assert AuditEvent.objects.filter(action="mfa.factor_removed").count() == 1


def test_bad_passkey_input_is_a_clear_json_problem(team):
    client = team.client_for("operator")
    begin = client.post("/account/second-factor/passkey/")
    assert begin.status_code == 409 and begin.json()["code"] == "no_factor"
    complete = client.post(
        "/account/security/passkeys/complete/", {"name": "Key", "response": "{not json"}
    )
    assert complete.status_code == 422 and complete.json()["code"] == "no_challenge"
    client.post("/account/security/passkeys/begin/")
    nameless = client.post("/account/security/passkeys/complete/", {"name": " ", "response": "{}"})
    assert nameless.status_code == 422 and "name" in nameless.json()["fields"]


def test_an_admin_sees_who_has_a_factor_and_resets_one_after_their_own_check(team, totp_clock):
    add_app(team.operator.user)
    admin, admin_app = logged_in_with_app(team, "admin")
    page = admin.get("/t/acme/members/").content.decode()
    assert page.count('name="reason"') == 2  # oscar's and the admin's own
    url = f"/t/acme/members/{team.operator.pk}/second-factor/reset/"

    asked = admin.post(url, {"reason": "Lost phone"}, **HTMX)
    assert 'id="step-up-form"' in asked.content.decode()
    assert 'value="Lost phone"' in asked.content.decode()
    done = admin.post(
        url, {"reason": "Lost phone", "second_factor_code": totp_clock.code(admin_app)}, **HTMX
    )
    assert done["HX-Redirect"] == "/t/acme/members/"
    event = AuditEvent.objects.get(action="mfa.reset")
    assert (event.actor, event.summary["user"]) == (team.admin.user, "oscar")
    page = admin.get("/t/acme/members/").content.decode()
    assert page.count('name="reason"') == 1

    assert team.client_for("marketer").post(url, {"reason": "x"}).status_code == 403
