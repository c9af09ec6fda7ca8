"""The pause in a real browser (headless Debian chromium, Playwright) against a live server: an
operator pauses sending from the overview, with a reason and a confirmation; every page of the
tenant then carries the banner, for every member; resuming takes it away.

No worker is needed: nothing here is sent to a vendor.
"""

from __future__ import annotations

import pytest

from dashboard.pauses.models import SendingPause
from tests.batchjobs.test_browser import SCREENSHOTS, browser, log_in  # noqa: F401 - fixture

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PAGES = ["/t/acme/", "/t/acme/runs/", "/t/acme/connections/", "/t/acme/members/"]


def test_pause_from_the_overview_shows_a_banner_on_every_page_until_resumed(
    team,
    live_server,
    browser,  # noqa: F811 - the imported fixture
):
    page = log_in(browser, live_server, "oscar")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live_server.url}/t/acme/")
    assert page.locator("#pause-banner").count() == 0

    page.click("#pause-link")
    form = page.locator("#pause-form")
    form.get_by_label("Reason").fill("Wrong audience in today's file")
    # Dismissed first: nothing is paused.
    page.once("dialog", lambda dialog: dialog.dismiss())
    form.get_by_role("button", name="Pause sending").click()
    assert not SendingPause.objects.exists()
    asked: list[str] = []

    def accept(dialog):
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    form.get_by_role("button", name="Pause sending").click()
    page.locator("#pause-banner").wait_for()
    assert asked == ["Pause sending? Nothing more is sent until someone resumes it."]

    marketer = log_in(browser, live_server, "mia")
    for viewer in (page, marketer):
        for path in PAGES:
            viewer.goto(f"{live_server.url}{path}")
            banner = viewer.locator("#pause-banner")
            assert banner.is_visible(), path
            text = banner.inner_text()
            assert "Sending is paused for Acme Sports by oscar since" in text, path
            assert "Wrong audience in today's file" in text, path
    marketer.screenshot(path=str(SCREENSHOTS / "pause-banner.png"), full_page=True)

    page.goto(f"{live_server.url}/t/acme/pause/")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Resume sending").click()
    page.get_by_text("Sending resumed for Acme Sports").wait_for()
    for path in PAGES:
        marketer.goto(f"{live_server.url}{path}")
        assert marketer.locator("#pause-banner").count() == 0, path
    assert errors == []
