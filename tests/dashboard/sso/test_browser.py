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
