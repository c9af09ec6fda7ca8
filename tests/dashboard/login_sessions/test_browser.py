"""Ending a session in a real browser (headless Debian chromium, Playwright) against a live
server: two browser contexts of one person; A ends B's session from "Your sessions", and B's
next page load goes to the login page."""

from __future__ import annotations

import pytest

from dashboard.login_sessions.models import LoginSession
from tests.browser_support import browser, console_errors, log_in, screenshot  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_browser_ends_another_browsers_session_which_is_logged_out_at_once(
    team,
    live_server,
    browser,  # noqa: F811 - the imported fixture
):
    first = log_in(browser, live_server, "oscar")
    second = log_in(browser, live_server, "oscar")
    errors = console_errors(first)
    second.goto(f"{live_server.url}/t/acme/runs/")
    assert second.url.endswith("/t/acme/runs/")

    first.goto(f"{live_server.url}/account/sessions/")
    rows = first.locator("#sessions tbody tr")
    assert rows.count() == 2
    this_one = rows.filter(has_text="This session")
    assert this_one.count() == 1 and this_one.get_by_role("button").count() == 0
    other_row = rows.filter(has_not_text="This session")
    assert "Chrome (headless) on Linux" in other_row.inner_text()
    screenshot(first, "your-sessions")

    other_row.get_by_role("button", name="End").click()
    first.get_by_role("status").get_by_text("ended: that browser is logged out").wait_for()
    assert first.locator("#sessions tbody tr").count() == 1
    assert LoginSession.objects.count() == 1

    second.goto(f"{live_server.url}/t/acme/runs/")
    assert "/login/" in second.url
    first.goto(f"{live_server.url}/t/acme/runs/")
    assert first.url.endswith("/t/acme/runs/")
    assert errors == []
