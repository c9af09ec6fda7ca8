"""The daily trigger in a real browser: request, approval by another operator, and the outcome
arriving live, against a live server, a real Celery worker process and the Optimove sandbox.

Headless Debian chromium driven by Playwright; the worker comes from the end-to-end harness
(tests/e2e/conftest.py: the test database, an emptied Redis, SIGKILL at teardown).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dashboard.runs.selectors import format_duration

# The shared browser fixture and helpers; other browser tests import them from here too.
from tests.browser_support import SCREENSHOTS, browser, log_in  # noqa: F401
from tests.e2e.conftest import e2e_redis, workers  # noqa: F401 - the e2e harness's fixtures

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_request_approve_and_watch_the_outcome_live(
    team,
    sandboxes,
    sandbox_connection,
    workers,  # noqa: F811 - the imported fixture, requested
    live_server,
    browser,  # noqa: F811 - the imported fixture
):
    sandbox_connection(team.tenant, "optimove_batch", name="Optimove EU")
    workers.start(pool="threads", concurrency=4)
    daily_url = f"{live_server.url}/t/acme/batch/daily/"

    # Mia, a marketer working from Tokyo, requests today's trigger.
    mia = log_in(browser, live_server, "mia", timezone_id="Asia/Tokyo")
    mia.goto(daily_url)
    mia.get_by_text("Yes. Request it below").wait_for()
    assert "your time)" in mia.locator("#daily-answer").inner_text()
    mia.get_by_label("I confirm that all of today's files have finished uploading.").check()
    mia.get_by_label("Extra validation wait (seconds, optional)").fill("10")
    mia.get_by_role("button", name="Request trigger (an operator approves)").click()
    mia.get_by_text("is waiting for another operator's approval").wait_for()
    mia.locator("#open-run").get_by_text("awaits approval").wait_for()
    assert mia.locator("#request-submit").is_disabled()

    # Oscar, an operator, approves it; the approval sends it at once.
    oscar = log_in(browser, live_server, "oscar")
    oscar.goto(daily_url)
    assert "Trigger daily batch (validation wait 10 s)" in oscar.locator("#open-run").inner_text()
    asked: list[str] = []
    oscar.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    oscar.get_by_role("button", name="Approve and trigger now").click()
    oscar.get_by_text("is queued and goes to Optimove now").wait_for()
    assert asked and asked[0].endswith("and trigger TriggerDaily now? It cannot be undone.")

    # The worker sends it; both pages follow it to the outcome without a reload.
    oscar.get_by_text("Done for today: Optimove's batch was triggered at").wait_for(timeout=30_000)
    mia.get_by_text("Done for today: Optimove's batch was triggered at").wait_for(timeout=30_000)
    today = oscar.locator("#today-trigger").inner_text()
    assert "Succeeded" in today and "requested by mia" in today and "approved by oscar" in today
    assert "Today's batch was already triggered" in oscar.locator("#daily-reasons").inner_text()
    assert oscar.locator("#request-submit").is_disabled()
    oscar.screenshot(path=str(SCREENSHOTS / "triggerdesk-daily-trigger.png"), full_page=True)

    received = sandboxes["optimove_batch"].received_on("trigger_daily")
    assert len(received) == 1
    assert received[0].json() == {"WaitTimeForValidationSeconds": 10}

    # The time to the next possible trigger counts down on its own (a fake page clock moved two
    # minutes on: no waiting for real minutes to pass).
    oscar.clock.install()
    oscar.reload()
    countdown = oscar.locator("#daily-live-note .countdown")
    target = datetime.fromisoformat(countdown.get_attribute("data-countdown-to"))
    rendered_at = datetime.fromisoformat(countdown.get_attribute("data-countdown-now"))
    assert countdown.inner_text() == format_duration((target - rendered_at).total_seconds())
    oscar.clock.fast_forward("02:00")
    moved = [format_duration((target - rendered_at).total_seconds() - s) for s in range(120, 131)]
    oscar.wait_for_function(
        "moved => moved.includes(document.querySelector('#daily-live-note .countdown').textContent)",
        arg=moved,
    )


def test_a_reader_east_of_utc_is_told_which_day_counts(
    team,
    sandbox_connection,
    browser,  # noqa: F811 - the imported fixture
    live_server,
    monkeypatch,
):
    # 23:30 UTC is already tomorrow in Moscow (UTC+3): the page says the trigger is for the UTC
    # date, and shows the reader's own clock beside the UTC times.
    late = datetime.now(UTC).replace(hour=23, minute=30, second=0, microsecond=0)
    monkeypatch.setattr("django.utils.timezone.now", lambda: late)
    sandbox_connection(team.tenant, "optimove_batch", name="Optimove EU")
    page = log_in(browser, live_server, "mia", timezone_id="Europe/Moscow")
    page.goto(f"{live_server.url}/t/acme/batch/daily/")
    note = page.locator("#local-date-note")
    note.wait_for()
    utc_day = late.date().isoformat()
    assert (
        f"but Optimove counts days in UTC: today's trigger is for {utc_day} (UTC)"
        in note.inner_text()
    )
    answer = page.locator("#daily-answer").inner_text()
    assert "Yes. Request it below" in answer
    assert "a request made now must be approved by 00:00 UTC" in answer
    assert "in 30 min 00 s" in answer
    assert "02:30 your time" in answer  # now, on the reader's clock
    assert "03:00 your time" in answer  # the next UTC midnight, on the reader's clock
    page.screenshot(path=str(SCREENSHOTS / "triggerdesk-daily-utc-plus-3.png"), full_page=True)


def test_start_a_talkifai_job_and_see_what_it_did(
    team,
    sandboxes,
    register_job,
    workers,  # noqa: F811 - the imported fixture, requested
    live_server,
    browser,  # noqa: F811 - the imported fixture
):
    register_job("job-scheduled-001")
    register_job("job-completed-001")
    workers.start(pool="threads", concurrency=2)
    oscar = log_in(browser, live_server, "oscar")
    oscar.goto(f"{live_server.url}/t/acme/batch/jobs/")
    # Each row asks TalkifAI for its job's status once the page is there.
    oscar.locator("#jobs").get_by_text("0 of 120 contacts called").wait_for()
    oscar.locator("#jobs").get_by_text("200 of 200 contacts called").wait_for()
    oscar.get_by_role("link", name="Start now…").click()
    oscar.get_by_text("and cancels its scheduled start").wait_for()
    oscar.get_by_role("button", name="Yes, start calling now").click()
    oscar.get_by_text("a worker sends it to TalkifAI now").wait_for()
    # The recent starts refresh until the start settles, then stop polling.
    starts = oscar.locator("#starts")
    starts.get_by_text("120 contacts enqueued").wait_for(timeout=30_000)
    assert "its scheduled start was cancelled" in starts.inner_text()
    oscar.screenshot(path=str(SCREENSHOTS / "triggerdesk-batch-calls.png"), full_page=True)
    assert sandboxes["talkifai"].state()["jobs"]["job-scheduled-001"]["api_starts"] == 1
