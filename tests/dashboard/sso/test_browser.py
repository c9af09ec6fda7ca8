"""Single sign-on in a real browser (headless Debian chromium, Playwright) against a live server
and the local OpenID Connect provider: an admin maps an IdP group to a role on the Single sign-on
page; someone in that group clicks "Sign in with Test IdP", signs in at the provider and lands in
the tenant with the mapped role."""

from __future__ import annotations

import pytest

from dashboard.models import Membership, MembershipSource, Role
from tests.browser_support import (  # noqa: F401 - browser is a fixture
    DESKTOP,
    PHONE,
    SCREENSHOTS,
    axe_violations,
    browser,
    log_in,
    no_overflow,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_sign_in_with_the_idp_lands_in_the_tenant_with_the_mapped_role(
    team,
    live_server,
    provider,
    browser,  # noqa: F811 - the imported fixture
):
    admin = log_in(browser, live_server, "ada")
    admin.goto(f"{live_server.url}/t/acme/sso/")
    form = admin.locator("#sso-mapping-form")
    form.get_by_label("Identity-provider group").fill("campaign-ops")
    form.get_by_label("Role in this tenant").select_option(Role.OPERATOR)
    form.get_by_role("button", name="Save").click()
    admin.get_by_text("Members of campaign-ops get the role operator").wait_for()
    admin.screenshot(path=str(SCREENSHOTS / "sso-mappings.png"), full_page=True)
    assert axe_violations(admin) == []
    admin.set_viewport_size(PHONE)
    assert no_overflow(admin)

    provider.add("sam", email="sam@example.com", groups=["campaign-ops", "cafeteria"])
    context = browser.new_context(timezone_id="UTC", locale="en-GB", viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{live_server.url}/t/acme/runs/")
    assert axe_violations(page) == []
    page.get_by_role("link", name="Sign in with Test IdP").click()
    page.wait_for_url(f"{provider.issuer}/authorize?**")
    page.get_by_label("Login").fill("sam")
    page.get_by_role("button", name="Sign in").click()

    # Back where they were going, in the tenant, with the role the group gives.
    page.wait_for_url(f"{live_server.url}/t/acme/runs/")
    page.get_by_text("Single sign-on gave you the role operator in Acme Sports").wait_for()
    page.get_by_text("These groups of yours give no role in TriggerDesk: cafeteria").wait_for()
    membership = Membership.objects.get(tenant=team.tenant, user__email="sam@example.com")
    assert (membership.role, membership.source) == (Role.OPERATOR, MembershipSource.SSO)
    page.goto(f"{live_server.url}/t/acme/members/")
    row = page.locator("tr", has_text="sam@example.com")
    assert "(from single sign-on)" in row.inner_text()


def test_journey_sign_in_with_the_idp_then_approve_with_a_fresh_second_factor(
    team,
    live_server,
    provider,
    browser,  # noqa: F811 - the imported fixture
    monkeypatch,
):
    """The whole way in for an approver: the tenant maps an IdP group to operators and requires a
    second factor; someone in the group signs in at the IdP, is sent to set a passkey up (Chromium's
    virtual authenticator), and later approves a marketer's request after a fresh check."""
    from datetime import timedelta

    from dashboard.audit.trail import Actor
    from dashboard.clock import utc_now
    from dashboard.models import AuditEvent
    from dashboard.runs.states import RunState
    from dashboard.sso import services as sso_services
    from tests.factories import RunFactory

    sso_services.mapping_set(
        actor=Actor(user=team.admin.user),
        tenant=team.tenant,
        group="campaign-ops",
        role=Role.OPERATOR,
    )
    team.tenant.require_second_factor = True
    team.tenant.save(update_fields=["require_second_factor"])
    run = RunFactory(
        tenant=team.tenant, state=RunState.AWAITING_APPROVAL, requested_by=team.marketer.user
    )
    provider.add("sam", email="sam@example.com", groups=["campaign-ops"])

    context = browser.new_context(timezone_id="UTC", locale="en-GB", viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(30_000)
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

    # Sign in at the IdP: the group gives the operator role, and the tenant's rule sends an
    # operator without a second factor to Account security first.
    page.goto(f"{live_server.url}/t/acme/runs/{run.pk}/")
    page.get_by_role("link", name="Sign in with Test IdP").click()
    page.wait_for_url(f"{provider.issuer}/authorize?**")
    page.get_by_label("Login").fill("sam")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/account/security/**")
    sam = Membership.objects.get(tenant=team.tenant, user__email="sam@example.com")
    assert (sam.role, sam.source) == (Role.OPERATOR, MembershipSource.SSO)
    page.fill("#passkey-name", "Laptop")
    page.click("#passkey-add")
    page.locator("#recovery-codes").wait_for()

    # Eleven minutes on, the approval asks for a fresh check in place; the passkey answers it.
    later = utc_now() + timedelta(minutes=11)
    monkeypatch.setattr("dashboard.mfa.session_state.utc_now", lambda: later)
    page.goto(f"{live_server.url}/t/acme/runs/{run.pk}/")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Approve").first.click()
    page.locator("#step-up-form").wait_for()
    run.refresh_from_db()
    assert run.state == RunState.AWAITING_APPROVAL
    page.get_by_role("button", name="Use a passkey").click()
    page.get_by_text("Approved. The run is queued").wait_for()
    run.refresh_from_db()
    assert run.state == RunState.QUEUED
    step_up = AuditEvent.objects.get(action="mfa.step_up")
    assert (step_up.actor, step_up.summary["factor"]) == (sam.user, "passkey")
    assert AuditEvent.objects.filter(action="run.approved", actor=sam.user).exists()
    context.close()
