"""The calendar of recurring schedules in a real browser (headless Debian chromium, Playwright)
against a live server, on a desktop and a phone: this week's fires with a blackout date, the
month view through htmx and back, the next month; no horizontal overflow and no axe violation.
No worker: nothing fires."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dashboard.audit.trail import Actor
from dashboard.clock import utc_now
from dashboard.recurring import services
from dashboard.send_windows.services import send_window_set
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
from tests.dashboard.recurring.conftest import generator_input

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_calendar_shows_the_weeks_fires_a_blackout_date_and_the_month(
    team,
    generator,
    live_server,
    browser,  # noqa: F811 - the imported fixture
    viewport,
):
    oscar = Actor(user=team.operator.user)
    services.schedule_create(
        actor=oscar,
        tenant=team.tenant,
        data=generator_input(generator, name="Daily kick-off " + "k" * 60, cron="0 9 * * *"),
    )
    tomorrow = (utc_now() + timedelta(days=1)).date()
    send_window_set(
        actor=oscar,
        connection=generator.connection,
        window=None,
        blackouts=f"{tomorrow} Company holiday",
        reason="Holiday",
    )
    page = log_in(browser, live_server, "mia", viewport=viewport)
    errors = console_errors(page)
    page.goto(f"{live_server.url}/t/acme/recurring/calendar/?date={tomorrow}")
    day = page.locator(f"#day-{tomorrow}")
    assert "Blackout: Optimove campaigns: Company holiday" in day.inner_text()
    assert "Daily kick-off" in day.inner_text()
    assert "it will be skipped" in day.inner_text()
    assert no_overflow(page)
    assert axe_violations(page) == []

    page.locator("#calendar-month").click()
    page.locator(".calendar-month").wait_for()
    assert "view=month" in page.url  # pushed to the history: a reload shows the month
    assert "Company holiday" in page.locator(f"#day-{tomorrow}").inner_text()
    assert no_overflow(page)
    assert axe_violations(page) == []
    screenshot(page, f"recurring-calendar-month-{'phone' if viewport == PHONE else 'desktop'}")

    title = page.locator("#calendar-title").inner_text()
    page.locator("#calendar-next").click()
    page.wait_for_function(
        "title => document.querySelector('#calendar-title').innerText !== title", arg=title
    )
    assert page.locator(".calendar-fire").count() > 0  # a daily rule fires next month too
    page.locator("#calendar-week").click()
    page.locator(".calendar-week").wait_for()
    assert no_overflow(page)
    assert errors == []
