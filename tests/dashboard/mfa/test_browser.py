"""Passkeys in a real browser (headless Debian chromium, Playwright) with Chromium's virtual
authenticator (DevTools: WebAuthn.enable, WebAuthn.addVirtualAuthenticator): an operator
registers a passkey on Account security, then approves a run; the approve button's answer is
the check in place, the passkey answers it, and the run is approved."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dashboard.clock import utc_now
from dashboard.mfa.models import Passkey
from dashboard.models import AuditEvent
from dashboard.runs.states import RunState
from tests.browser_support import (  # noqa: F401 - the browser fixture
    PASSWORD,
    axe_violations,
    browser,
    console_errors,
    log_in,
    no_overflow,
)
from tests.factories import RunFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_passkey_registered_in_the_browser_answers_the_step_up_of_an_approval(
    team,
    live_server,
    browser,  # noqa: F811 - the imported fixture
    monkeypatch,
):
    run = RunFactory(
        tenant=team.tenant, state=RunState.AWAITING_APPROVAL, requested_by=team.marketer.user
    )
    page = log_in(browser, live_server, "oscar")
    errors = console_errors(page)
    devtools = page.context.new_cdp_session(page)
    devtools.send("WebAuthn.enable")
    devtools.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )

    page.goto(f"{live_server.url}/account/security/")
    page.fill("#passkey-name", "Virtual key")
    page.click("#passkey-add")
    page.locator("#recovery-codes").wait_for()
    passkey = Passkey.objects.get()
    assert (passkey.user, passkey.name) == (team.operator.user, "Virtual key")
    assert page.locator("#recovery-codes li").count() == 10
    assert no_overflow(page)
    assert axe_violations(page) == []

    # Eleven minutes on: the check made by registering is no longer fresh.
    later = utc_now() + timedelta(minutes=11)
    monkeypatch.setattr("dashboard.mfa.session_state.utc_now", lambda: later)
    page.goto(f"{live_server.url}/t/acme/runs/{run.pk}/")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Approve").first.click()
    page.locator("#step-up-form").wait_for()
    assert axe_violations(page) == []
    run.refresh_from_db()
    assert run.state == RunState.AWAITING_APPROVAL

    page.get_by_role("button", name="Use a passkey").click()
    page.get_by_text("Approved. The run is queued").wait_for()
    run.refresh_from_db()
    assert run.state == RunState.QUEUED
    event = AuditEvent.objects.get(action="mfa.step_up")
    assert (event.summary["factor"], event.summary["device"]) == ("passkey", "Virtual key")

    # Logging in again: after the password, the passkey (the same virtual authenticator).
    page.get_by_role("button", name="Log out").click()
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "oscar")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/account/second-factor/**")
    page.get_by_role("button", name="Use a passkey").click()
    page.wait_for_url(f"{live_server.url}/t/**")
    assert AuditEvent.objects.get(action="mfa.login_check").summary["factor"] == "passkey"
    assert errors == []
