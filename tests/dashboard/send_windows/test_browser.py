"""The connection page's send window in a real browser (headless Debian chromium, Playwright)
against a live server, on a desktop and a phone: an operator ticks weekdays, sets the times,
picks a zone and lists blackout dates; a bad date shows the form again with the error (nothing
changed); the rules then read in words. No worker: nothing is sent.
"""

from __future__ import annotations

import pytest

from dashboard.send_windows.models import BlackoutDate, SendWindow
from tests.browser_support import (  # noqa: F401 - the browser fixture
    DESKTOP,
    PHONE,
    axe_violations,
    browser,
    console_errors,
    log_in,
    no_overflow,
    screenshot,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_an_operator_sets_a_send_window_on_the_connection_page(
    team,
    daily_connection,
    live_server,
    browser,  # noqa: F811 - the imported fixture
    viewport,
):
    page = log_in(browser, live_server, "oscar", viewport=viewport)
    errors = console_errors(page)
    page.goto(f"{live_server.url}/t/acme/connections/{daily_connection.pk}/")
    section = page.locator("#send-window")
    assert "Any time: no send window and no blackout dates." in section.inner_text()

    section.get_by_text("Change the send window").click()
    section.get_by_label("No window").uncheck()
    for day in ("Sat", "Sun"):
        section.get_by_label(day, exact=True).uncheck()
    section.get_by_label("From (local time)").fill("08:00")
    section.get_by_label("Until (local time)").fill("21:00")
    section.get_by_label("Time zone").select_option("Europe/Berlin")
    section.get_by_label("Blackout dates").fill("2026-12-24 Christmas Eve\n2026-12-32 Typo")
    section.get_by_label("Why this change").fill("Brand rules")
    assert axe_violations(page) == []
    assert no_overflow(page)
    section.get_by_role("button", name="Save send window").click()

    page.get_by_text("Blackout date 2 ('2026-12-32') is not a date").wait_for()
    assert not SendWindow.objects.exists() and not BlackoutDate.objects.exists()
    # What was typed is still there: fix the one line and save.
    blackouts = page.locator("#send-window").get_by_label("Blackout dates")
    assert "2026-12-24 Christmas Eve" in blackouts.input_value()
    blackouts.fill("2026-12-24 Christmas Eve\n2026-12-31")
    page.locator("#send-window").get_by_role("button", name="Save send window").click()

    page.get_by_text("Send window of Optimove batch:").wait_for()
    text = page.locator("#send-window-text").inner_text()
    assert text == "Mon\u2013Fri 08:00\u201321:00 Europe/Berlin; not on 2026-12-24, 2026-12-31"
    assert "Not on Thu 2026-12-24: Christmas Eve" in page.locator("#send-window").inner_text()
    assert no_overflow(page)
    assert axe_violations(page) == []
    screenshot(page, "connection-send-window")
    # The refused form answers 422 on purpose (the browser logs that status); nothing else.
    assert [error for error in errors if "status of 422" not in error] == []
