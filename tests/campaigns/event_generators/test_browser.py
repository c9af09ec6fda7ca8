"""A marketer in a real browser (Debian chromium, Playwright) builds an event generator's schema,
sees the form it produces, triggers it, and watches the execution reach published live: a live
server, a real Celery worker process and the Optimove campaigns sandbox over HTTP."""

from __future__ import annotations

import contextlib
import json

import pytest
from playwright.sync_api import Error as PlaywrightError

from campaigns.event_generators.models import EventGenerator
from dashboard.runs.models import Run
from dashboard.runs.states import RunState
from tests.browser_support import SCREENSHOTS, browser, console_errors, log_in  # noqa: F401
from tests.campaigns.conftest import ARSENAL, CHELSEA, MATCH_START

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "match_name": {"type": "string", "title": "Match", "description": "As fans know it"},
        "start_time": {"type": "string", "format": "date-time"},
        "minute": {"type": "integer", "minimum": 0},
        "url": {"type": "string", "format": "uri"},
    },
    "required": ["match_name", "start_time", "url"],
}


def test_a_marketer_builds_a_schema_triggers_and_watches_it_publish(
    team,
    sandboxes,
    campaigns_connection,
    workers,
    live_server,
    browser,  # noqa: F811 - the imported fixture, requested
):
    workers.start(pool="threads", concurrency=4)
    mia = log_in(browser, live_server, "mia", timezone_id="Europe/Paris")
    mia.goto(f"{live_server.url}/t/acme/")
    mia.get_by_role("link", name="Campaigns", exact=True).first.click()
    mia.get_by_role("link", name="Register an event generator").click()

    mia.get_by_label("Event Generator ID").fill(MATCH_START)
    mia.get_by_label("Name").fill("Match Start Notifications")
    mia.get_by_label("Connection").select_option(label=str(campaigns_connection))
    mia.get_by_label("Topics").fill(f"{ARSENAL} Arsenal\n{CHELSEA} Chelsea")
    # The editor's preview follows the schema as it is typed, and says when it is not valid.
    mia.locator("textarea[name=schema]").fill(
        '{"type": "object", "properties": {"a": {"type": 5}}}'
    )
    mia.locator("#schema-preview-error").wait_for()
    mia.locator("textarea[name=schema]").fill(json.dumps(SCHEMA, indent=2))
    mia.locator('#schema-preview input[name="ctx/start_time"][type=datetime-local]').wait_for()
    assert "As fans know it" in mia.locator("#schema-preview").inner_text()
    mia.get_by_role("button", name="Register").click()
    mia.get_by_text("Event generator Match Start Notifications registered.").wait_for()
    assert EventGenerator.objects.get().current_schema.schema == SCHEMA

    mia.get_by_role("link", name="Trigger", exact=True).click()

    mia.get_by_label("Arsenal").check()
    mia.get_by_label("Match").fill("Arsenal vs Chelsea")
    mia.locator('input[name="ctx/start_time"]').fill("2026-02-05T20:00:00")
    # The reader's own time beside the UTC input (Paris is UTC+1 in February).
    mia.get_by_text("21:00:00").first.wait_for()
    mia.locator('input[name="ctx/url"]').fill("not a url")
    mia.locator("#preview-errors").get_by_text("Not an absolute URL").wait_for()
    # Sent anyway: refused, nothing sent, the error under the field; fixing the field clears it
    # as soon as the live check agrees (no stale error beside a green "matches").
    mia.get_by_role("button", name="Send").click()
    url_field = mia.locator('.field[data-field="ctx/url"]')
    url_field.locator(".field-error").wait_for()
    assert Run.objects.count() == 0
    mia.locator('input[name="ctx/url"]').fill("https://example.com/match/1")
    mia.locator("#preview-ok").wait_for()
    mia.wait_for_function(
        "() => !document.querySelector('.field[data-field=\"ctx/url\"]')"
        ".classList.contains('has-error')"
    )
    assert url_field.locator(".field-error").count() == 0
    body = mia.locator("#preview-body").inner_text()
    assert body == (
        '{"topic_key":"' + ARSENAL + '","context":{"url":"https://example.com/match/1",'
        '"match_name":"Arsenal vs Chelsea","start_time":"2026-02-05T20:00:00Z"}}'
    )
    assert "sandbox-optimove" not in mia.content()  # no secret on the page
    mia.screenshot(path=str(SCREENSHOTS / "triggerdesk-campaign-trigger-form.png"), full_page=True)

    mia.get_by_role("button", name="Send").click()
    # The run page follows the execution live: queued → processing → published.
    mia.locator("#vendor-status").get_by_text("published").wait_for(timeout=60_000)
    run = Run.objects.get()
    assert run.state == RunState.SUCCEEDED
    assert mia.locator("#execution-id").inner_text() == run.vendor_reference
    assert mia.locator("#audience-size").inner_text() == f"{run.audience_size:,}"
    mia.get_by_role("link", name="Relaunch").wait_for()
    mia.screenshot(path=str(SCREENSHOTS / "triggerdesk-campaign-published.png"), full_page=True)
    sent = sandboxes["optimove_campaigns"].state()["executions"]
    assert len(sent) == 1 and sent[0]["context"]["match_name"] == "Arsenal vs Chelsea"

    # The campaign home lists the trigger with its UTC time and, beside it, the reader's own
    # (static/js/app.js fills <time class="local">, on the campaign pages and after htmx swaps).
    mia.goto(f"{live_server.url}/t/acme/campaigns/")
    when = mia.locator("time.local").first
    mia.wait_for_function("() => document.querySelector('time.local').dataset.localDone === '1'")
    assert " UTC · your time " in when.inner_text()
    assert when.get_attribute("title").startswith("Your time: ")


def test_typing_in_the_trigger_form_logs_no_error_and_previews_what_was_typed_last(
    team,
    generator,
    live_server,
    browser,  # noqa: F811 - the imported fixture
):
    """Each pause in typing asks the server for the preview; a pause while the previous answer is
    still on its way used to abort that request, and htmx logs every abort as an error
    (htmx:sendAbort, htmx:afterRequest) in the reader's console."""
    mia = log_in(browser, live_server, "mia")
    errors = console_errors(mia)
    held = []  # the preview requests, answered only when the test says so
    mia.route("**/trigger/preview/", lambda route: held.append(route))
    mia.goto(f"{live_server.url}/t/acme/campaigns/generators/{generator.pk}/trigger/")
    mia.evaluate(
        """() => {
            window.previewsAsked = 0;
            document.body.addEventListener("htmx:confirm", () => { window.previewsAsked += 1; });
        }"""
    )
    field = mia.locator('input[name="ctx/match_name"]')
    field.press_sequentially("Arsenal")
    mia.wait_for_function("() => window.previewsAsked >= 1")
    # A second burst while the first preview is still unanswered.
    field.press_sequentially(" vs Chelsea")
    mia.wait_for_function("() => window.previewsAsked >= 2")
    # Answer whatever was asked, as often as it is asked, until the preview shows the last words.
    mia.unroute("**/trigger/preview/")
    for route in held:
        with contextlib.suppress(PlaywrightError):  # a request the page itself gave up
            route.continue_()
    mia.locator("#preview-body").get_by_text('"match_name":"Arsenal vs Chelsea"').wait_for()
    field.press_sequentially("!")
    mia.locator("#preview-body").get_by_text('"match_name":"Arsenal vs Chelsea!"').wait_for()
    assert errors == []
