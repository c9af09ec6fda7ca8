"""The mailed approval link in a real browser (Debian chromium, Playwright): open it signed out,
sign in, land on the request, approve, see it approved."""

from __future__ import annotations

import pytest

from dashboard.audit.trail import Actor
from dashboard.clock import utc_now
from dashboard.runs import services
from dashboard.runs.models import Run
from dashboard.runs.states import RunState
from tests.browser_support import PASSWORD, axe_violations, browser  # noqa: F401
from tests.dashboard.approval_links.conftest import LINK

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("clean_redis"),
]


def test_open_the_mailed_link_sign_in_and_approve(
    team,
    sandbox_connection,
    live_server,
    settings,
    mailoutbox,
    browser,  # noqa: F811 - the imported fixture
):
    settings.SITE_URL = live_server.url
    run = services.run_submit(
        actor=Actor(user=team.marketer.user),
        tenant=team.tenant,
        connection=sandbox_connection(team.tenant, "optimove_batch", name="Optimove EU"),
        operation="optimove_trigger_daily",
        parameters={"wait_time_for_validation_seconds": None},
        idempotency_key="browser-link",
        approval_required=True,
        attestation="All of today's files have finished uploading.",
        utc_date=utc_now().date(),
        check_duplicates=False,
    )
    mail = next(message for message in mailoutbox if message.to == ["oscar@example.com"])
    link = LINK.search(mail.body)[0]

    page = browser.new_context(locale="en-GB", timezone_id="UTC").new_page()
    page.set_default_timeout(15_000)
    page.goto(link)
    page.wait_for_url(f"{live_server.url}/login/**")
    page.fill("input[name=username]", "oscar")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(link)
    assert run.parameters_hash in page.locator("#approval-link-fingerprint").inner_text()
    assert axe_violations(page) == []
    page.locator("#approve_comment").fill("Files checked")
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(f"{live_server.url}/t/acme/runs/{run.pk}/")
    page.get_by_text("Approved. The run is queued").wait_for()
    assert Run.objects.get(pk=run.pk).state == RunState.QUEUED  # no worker here: it waits
