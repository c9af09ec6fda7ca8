"""Six journeys as the people who make them (issue 22, item 10): a marketer triggers a campaign
for several topics and watches it publish, schedules one and sees its outcome, sends a CRM
export to Altcraft; an operator approves someone else's daily request; an auditor filters and
exports; an admin replaces a secret and tests the connection.

Each one logs in through the login page, clicks what it reads (roles and labels, never ids),
waits on what the page shows (htmx keeps it live), against a live server, a real Celery worker
(threads pool) and the vendor sandboxes over HTTP; and checks what the vendor received. Every
main page is checked at 1280 and 390 px: nothing wider than the window, no serious axe-core
violation, nothing in the console. `make screenshots` keeps the screenshots in docs/screenshots.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from dashboard.runs.models import Run
from dashboard.runs.states import RunState
from tests.browser_support import (  # noqa: F401 - the browser fixture
    DESKTOP,
    PHONE,
    axe_violations,
    browser,
    console_errors,
    no_overflow,
    screenshot,
    widest_elements,
)
from tests.campaigns.conftest import (  # noqa: F401 - fixtures
    ARSENAL,
    CHELSEA,
    campaigns_connection,
    make_generator,
)
from tests.e2e.conftest import wait_for
from tests.factories import PASSWORD

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LIVERPOOL = "6f1c2e0a-1b2c-4d3e-8f40-000000000003"
TOPICS = [(ARSENAL, "Arsenal"), (CHELSEA, "Chelsea"), (LIVERPOOL, "Liverpool")]
# The vendor answers within seconds; these cover a slow, shared machine.
LIVE = 60_000


def sign_in(chromium, live_server, username: str, *, viewport: dict | None = None):
    """A new browser (its own cookies) at the login page, signed in as `username` the way a
    person does it; (page, the list its console errors go to)."""
    context = chromium.new_context(timezone_id="UTC", locale="en-GB", viewport=viewport or DESKTOP)
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors = console_errors(page)
    page.goto(f"{live_server.url}/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/t/**")
    return page, errors


def check_page(
    page, errors: list[str], name: str = "", *, phone_shot: bool = False, menu_shot: bool = False
) -> None:
    """The page as it is now, at 1280 and at 390 px: not wider than the window, no serious or
    critical axe-core violation, no console error. `name` keeps a 1280 px screenshot of the
    window; `phone_shot` one at 390 px too, `menu_shot` one at 390 px with the Menu open."""
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        assert no_overflow(page), (page.url, viewport, widest_elements(page))
        assert axe_violations(page) == [], (page.url, viewport)
        if name and (viewport is DESKTOP or phone_shot):
            screenshot(page, name, full_page=False)
        if menu_shot and viewport is PHONE:
            page.get_by_role("button", name="Menu").click()
            page.get_by_role("navigation", name="Main").wait_for()
            assert no_overflow(page)
            screenshot(page, f"{name}-menu", full_page=False)
            page.get_by_role("button", name="Menu").click()
    page.set_viewport_size(DESKTOP)
    assert errors == [], page.url


def fill_context(page, match_name: str) -> None:
    """The trigger form's context, as the marketer types it."""
    page.get_by_label("Match id").fill("epl-2026-101")
    page.get_by_label("match_name").fill(match_name)
    page.get_by_label("start_time").fill("2026-02-05T20:00:00")
    page.get_by_label(re.compile(r"^url")).fill("https://example.com/match/101")
    page.get_by_text("The context matches the schema.").wait_for()


def test_a_marketer_triggers_a_campaign_for_three_topics_and_watches_them_publish(
    team,
    sandboxes,
    make_generator,  # noqa: F811
    workers,
    live_server,
    browser,  # noqa: F811
):
    make_generator(topics=TOPICS)
    workers.start(pool="threads", concurrency=4)
    mia, errors = sign_in(browser, live_server, "mia")
    mia.get_by_role("heading", name="Acme Sports").wait_for()
    check_page(mia, errors)

    mia.get_by_role("navigation", name="Main").get_by_role("link", name="Campaigns").click()
    mia.get_by_role("link", name="Trigger →").click()
    mia.get_by_label("All 3 topics of this generator").check()
    fill_context(mia, "Derby day")
    check_page(mia, errors, "trigger-form")
    mia.get_by_role("button", name="Send").click()

    # Three topics: the trigger's page, following its runs live until all three are published.
    mia.wait_for_url("**/campaigns/triggers/*/")
    outcome = mia.locator("#group-outcome")
    outcome.get_by_text("Published", exact=True).wait_for(timeout=LIVE)
    assert mia.locator("#published-count").inner_text() == "3"
    assert mia.locator("#failed-count").inner_text() == "0"
    rows = mia.get_by_role("row").filter(has_text="Succeeded")
    assert rows.count() == 3
    for _, topic in TOPICS:
        assert rows.filter(has_text=topic).count() == 1
    check_page(mia, errors, "trigger-published", phone_shot=True)

    # Optimove received one execution per topic, each once, with what the form showed.
    executions = sandboxes["optimove_campaigns"].state()["executions"]
    assert sorted(execution["topic_key"] for execution in executions) == sorted(
        key for key, _ in TOPICS
    )
    assert {execution["context"]["match_name"] for execution in executions} == {"Derby day"}
    assert list(Run.objects.values_list("state", flat=True)) == [RunState.SUCCEEDED] * 3


def test_a_marketer_schedules_a_campaign_and_sees_it_fire(
    team,
    sandboxes,
    make_generator,  # noqa: F811
    workers,
    live_server,
    browser,  # noqa: F811
):
    from campaigns.event_generators.models import ScheduledTrigger, ScheduleState

    make_generator(topics=TOPICS)
    workers.start(pool="threads", concurrency=4)
    mia, errors = sign_in(browser, live_server, "mia")
    mia.get_by_role("navigation", name="Main").get_by_role("link", name="Campaigns").click()
    mia.get_by_role("link", name="Trigger →").click()
    mia.get_by_label("Chelsea").check()
    fill_context(mia, "Kick-off in a moment")
    mia.get_by_label("Schedule for later").check()
    # A little ahead, so the test waits little; the form takes UTC, to the second. The worker's
    # countdown fires it (beat's pass does in production).
    fire_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=15)
    mia.get_by_label("Send at (UTC)").fill(fire_at.strftime("%Y-%m-%dT%H:%M:%S"))
    mia.get_by_role("button", name="Send").click()

    mia.get_by_text(f"Scheduled for {fire_at:%Y-%m-%d %H:%M:%S} UTC.").wait_for()
    schedule = ScheduledTrigger.objects.get()
    upcoming = mia.locator("#upcoming").get_by_role("row").filter(has_text="Match Start")
    assert f"{fire_at:%Y-%m-%d %H:%M:%S} UTC" in upcoming.inner_text()
    assert sandboxes["optimove_campaigns"].state()["executions"] == []  # nothing before then
    check_page(mia, errors)

    # The schedules page is not live: the marketer reloads it until the past list shows how
    # it went.
    past = mia.locator(f"#past-{schedule.pk}")

    def shown_published() -> bool:
        mia.reload()
        return past.count() == 1 and "Published" in past.inner_text()

    wait_for(shown_published, timeout=90, interval=1, message="the schedule's outcome")
    assert "Fired at" in past.inner_text()
    assert "Chelsea: Succeeded" in past.inner_text()
    assert mia.locator("#upcoming").get_by_text("Nothing scheduled.").is_visible()
    check_page(mia, errors, "schedules")
    past.get_by_role("link", name=re.compile(r"^trigger #")).click()
    mia.get_by_text(f"fired by schedule #{schedule.pk}").wait_for()
    mia.locator("#group-outcome").get_by_text("Published", exact=True).wait_for()

    schedule.refresh_from_db()
    assert schedule.state == ScheduleState.FIRED and schedule.fired_at >= fire_at
    [execution] = sandboxes["optimove_campaigns"].state()["executions"]
    assert execution["topic_key"] == CHELSEA
    assert execution["context"]["match_name"] == "Kick-off in a moment"


def test_a_marketer_sends_a_crm_export_to_altcraft_and_watches_the_chunks(
    team,
    sandboxes,
    sandbox_connection,
    workers,
    live_server,
    browser,  # noqa: F811
    settings,
    tmp_path,
):
    from campaigns.altcraft_launches import services
    from dashboard.audit.trail import Actor

    settings.ALTCRAFT_UPLOAD_DIR = tmp_path / "uploads"
    altcraft = sandboxes["altcraft"]
    # A small body limit: 120 recipients go in several chunks.
    altcraft.control("set_body_limit", {"bytes": 3000})
    # The account holds every customer of the export, as it would in production.
    altcraft.control("set_match_every_item", {"enabled": True})
    connection = sandbox_connection(
        team.tenant, "altcraft", name="Altcraft", options={"body_limit_bytes": 3000}
    )
    services.trigger_register(
        actor=Actor(user=team.admin.user),
        tenant=team.tenant,
        connection=connection,
        trigger_id=8,
        name="Abandoned cart",
    )
    workers.start(
        pool="threads",
        concurrency=4,
        env={"ALTCRAFT_UPLOAD_DIR": str(settings.ALTCRAFT_UPLOAD_DIR)},
    )
    # A CRM export as it comes: the address in a column not called "email", columns beside it
    # that must not leave, one contact without an address.
    lines = ["Customer id,First name,Work e-mail,Lifetime value"]
    emails = [f"buyer{index:03d}@example.com" for index in range(120)]
    lines += [f"C{index},Name{index},{email},{index * 7}" for index, email in enumerate(emails)]
    lines.insert(4, "C999,Nobody,,0")  # row 5

    mia, errors = sign_in(browser, live_server, "mia")
    mia.get_by_role("navigation", name="Main").get_by_role("link", name="Altcraft").click()
    mia.get_by_role("link", name="Bulk launch").click()
    mia.get_by_label("CSV or XLSX file").set_input_files(
        files=[
            {
                "name": "crm-export.csv",
                "mimeType": "text/csv",
                "buffer": ("\n".join(lines) + "\n").encode(),
            }
        ]
    )
    mia.get_by_role("button", name="Upload and preview").click()
    mia.get_by_role("heading", name="Which column of crm-export.csv is sent?").wait_for()
    mia.get_by_label("Work e-mail").check()
    mia.get_by_role("button", name="Check the file and preview").click()

    # The preview (read by the worker): the column sent, the ones ignored, the empty row.
    mia.locator("#rows-valid").get_by_text("120").wait_for(timeout=LIVE)
    assert mia.locator("#launch-column").inner_text().strip() == "Work e-mail"
    assert (
        mia.locator("#ignored-columns").inner_text().strip()
        == "Customer id, First name, Lifetime value"
    )
    assert mia.locator("#empty-rows").inner_text().strip() == "5"
    assert altcraft.received == []  # the preview sent nothing
    check_page(mia, errors, "altcraft-preview")

    mia.get_by_label("Skip the 1 empty row").check()
    mia.get_by_role("button", name="Send to 120 recipients").click()
    mia.locator("#launch-done").wait_for(timeout=LIVE)
    assert mia.locator("#overall-percent").inner_text().strip() == "100%"
    mia.get_by_text("120 of 120 matched a profile").wait_for()
    chunks = mia.locator("#chunk-table tbody tr")
    mia.get_by_role("heading", name="Progress").scroll_into_view_if_needed()
    mia.mouse.wheel(0, 300)  # the chunks, under their progress bar, in the screenshot
    check_page(mia, errors, "altcraft-chunks")

    # Each chunk reached Altcraft once, with the chosen column's values and nothing else.
    received = [request for request in altcraft.received_on("start_batch") if request.processed]
    assert len(received) == chunks.count() > 1
    items = [item for request in received for item in json.loads(request.body)["data"]]
    assert sorted(item["email"] for item in items) == emails  # each address once
    assert all(list(item) == ["email"] for item in items)
    assert not any("Name" in request.body or "C1" in request.body for request in received)


def test_an_operator_approves_another_operators_daily_request(
    team,
    sandboxes,
    sandbox_connection,
    workers,
    live_server,
    browser,  # noqa: F811
):
    sandbox_connection(team.tenant, "optimove_batch", name="Optimove EU")
    workers.start(pool="threads", concurrency=4)

    # Olga, an operator, requests today's trigger; she may not approve it herself.
    olga, olga_errors = sign_in(browser, live_server, "olga")
    olga.get_by_role("navigation", name="Main").get_by_role("link", name="Daily trigger").click()
    olga.get_by_label("I confirm that all of today's files have finished uploading.").check()
    olga.get_by_role("button", name="Request trigger (an operator approves)").click()
    olga.get_by_text("You requested it; another operator must approve it.").wait_for()
    assert olga.get_by_role("button", name="Approve and trigger now").count() == 0
    assert olga_errors == []

    # Oscar sees it waiting for him from the overview, and approves it on the daily page.
    oscar, errors = sign_in(browser, live_server, "oscar")
    oscar.get_by_role("link", name="1 waiting for your approval").wait_for()
    assert "requested by olga" in oscar.locator("#needs-a-person").inner_text()
    check_page(oscar, errors, "overview", menu_shot=True)
    oscar.get_by_role("navigation", name="Main").get_by_role("link", name="Daily trigger").click()
    request = oscar.locator("#open-run")
    request.get_by_text("awaits approval").wait_for()
    assert "olga" in request.inner_text()
    check_page(oscar, errors, "daily-approval")
    oscar.once("dialog", lambda dialog: dialog.accept())
    oscar.get_by_role("button", name="Approve and trigger now").click()

    # Both pages follow it to the outcome without a reload.
    done = "Done for today: Optimove's batch was triggered at"
    oscar.get_by_text(done).wait_for(timeout=LIVE)
    olga.get_by_text(done).wait_for(timeout=LIVE)
    today = oscar.locator("#today-trigger").inner_text()
    assert "requested by olga" in today and "approved by oscar" in today
    check_page(oscar, errors)
    oscar.locator("#today-trigger").get_by_role("link").click()
    oscar.get_by_role("heading", name=re.compile(r"Run #\d+")).wait_for()
    assert "Succeeded" in oscar.locator("#run-status").inner_text()
    check_page(oscar, errors, "run-page", menu_shot=True)
    assert olga_errors == []

    # Sent once, with no extra wait (null: Optimove's own default).
    [received] = sandboxes["optimove_batch"].received_on("trigger_daily")
    assert received.json() == {"WaitTimeForValidationSeconds": None}


def test_an_auditor_filters_the_trail_and_the_runs_and_exports_them(
    team,
    live_server,
    browser,  # noqa: F811
):
    from dashboard.audit.trail import Actor
    from dashboard.models import VendorKind
    from dashboard.runs.services import run_reject, run_submit
    from tests.factories import RunFactory, VendorConnectionFactory

    calls = VendorConnectionFactory(tenant=team.tenant, kind=VendorKind.TALKIFAI, name="Calls")
    requested = []
    for number, person in enumerate(["mia", "mia", "olga", "mia"]):
        membership = team.marketer if person == "mia" else team.second_operator
        requested.append(
            run_submit(
                actor=Actor(user=membership.user),
                tenant=team.tenant,
                connection=calls,
                operation="talkifai_start_batch_job",
                parameters={
                    "batch_job_id": f"job-{number}",
                    "batch_job_name": f"Win-back {number}",
                },
                idempotency_key=f"auditor-{number}",
                approval_required=True,
            )
        )
    rejected = run_reject(
        actor=Actor(user=team.operator.user), run=requested[1], comment="Wrong list"
    )
    RunFactory(
        tenant=team.tenant, connection=calls, requested_by=team.marketer.user, state="succeeded"
    )
    mine_waiting = sorted([requested[0].pk, requested[3].pk])

    aude, errors = sign_in(browser, live_server, "aude")
    aude.get_by_role("navigation", name="Main").get_by_role("link", name="Audit").click()
    action = aude.get_by_label("Action")
    # The action filter offers the tenant's own actions.
    offered = aude.locator("#audit-actions option").evaluate_all(
        "options => options.map(option => option.value)"
    )
    assert {"run.requested", "run.rejected"} <= set(offered)
    assert aude.get_by_role("row").filter(has_text="run.requested").count() == 4
    action.fill("run.rejected")
    action.press("Enter")
    aude.wait_for_url(re.compile(r".*action=run\.rejected"))
    events = aude.locator("#events tbody tr")
    expect(events).to_have_count(1, timeout=20_000)
    assert "oscar" in events.inner_text() and "Wrong list" in events.inner_text()
    check_page(aude, errors, "audit")

    aude.get_by_role("navigation", name="Main").get_by_role("link", name="Runs").click()
    # Loaded, htmx with it: a select's change before htmx listens is lost (no native submit).
    aude.wait_for_url(re.compile(r".*/runs/$"))
    aude.get_by_label("Requested by").select_option(label="mia")
    aude.wait_for_url(re.compile(r".*requester="))
    aude.get_by_label("State").select_option(label="Awaiting approval")
    aude.wait_for_url(re.compile(r".*state=awaiting_approval"))
    shown = aude.locator("#runs tbody tr")
    expect(shown).to_have_count(2, timeout=20_000)
    assert aude.locator(f"#run-{rejected.pk}").count() == 0
    check_page(aude, errors, "runs")

    with aude.expect_download() as download:
        aude.get_by_role("link", name="Export CSV").click()
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    assert sorted(int(row["run"]) for row in rows) == mine_waiting
    titles = {int(row["run"]): row["title"] for row in rows}
    for run in Run.objects.filter(pk__in=mine_waiting):
        assert titles[run.pk] == run.title and "Win-back" in run.title
    assert {row["state"] for row in rows} == {"awaiting_approval"}
    assert {row["requested_by"] for row in rows} == {"mia"}
    assert {row["connection"] for row in rows} == {"Calls"}
    assert errors == []


def test_an_admin_replaces_a_secret_tests_the_connection_and_never_sees_it_again(
    team,
    sandboxes,
    sandbox_connection,
    live_server,
    browser,  # noqa: F811
    caplog,
):
    from dashboard.models import AuditEvent

    caplog.set_level(logging.DEBUG)
    # The stored token was revoked at Altcraft; the vendor issued a new one.
    sandbox_connection(
        team.tenant,
        "altcraft",
        name="Altcraft production",
        secret_values={"token": "revoked-altcraft-0000"},
    )
    new_token = f"altcraft-{uuid.uuid4().hex}"
    sandboxes["altcraft"].control("add_token", {"token": new_token})
    seen: list[str] = []

    ada, errors = sign_in(browser, live_server, "ada")
    ada.get_by_role("navigation", name="Main").get_by_role("link", name="Connections").click()
    ada.get_by_role("link", name="Altcraft production").click()
    ada.get_by_role("button", name="Test connection").click()
    result = ada.locator("#connection-test")
    result.get_by_text("failed").wait_for()
    assert "Invalid token" in result.inner_text()

    ada.get_by_label("Secret").select_option(label="API token")
    ada.get_by_label("New value").fill(new_token)
    ada.get_by_role("button", name="Replace secret").click()
    ada.get_by_text("API token replaced.").wait_for()
    seen.append(ada.content())
    assert ada.get_by_label("New value").input_value() == ""
    assert f"••••{new_token[-4:]}" in ada.locator(".secret-hint").inner_text()

    ada.get_by_role("button", name="Test connection").click()
    result.get_by_text("passed").wait_for()
    assert "API token accepted" in result.inner_text()
    seen.append(ada.content())
    check_page(ada, errors, "connection-tested")

    # Everywhere the admin goes next: the edit page, the list, the trail.
    ada.get_by_role("link", name="Edit").click()
    ada.get_by_role("heading", name="Edit Altcraft production").wait_for()
    seen.append(ada.content())
    ada.get_by_role("navigation", name="Main").get_by_role("link", name="Connections").click()
    seen.append(ada.content())
    ada.get_by_role("navigation", name="Main").get_by_role("link", name="Audit").click()
    audit = ada.locator("#events")
    audit.get_by_text("connection.tested").first.wait_for()
    seen.append(ada.content())
    assert errors == []

    assert all(new_token not in html for html in seen)
    stored = json.dumps(list(AuditEvent.objects.values_list("summary", flat=True)))
    assert "connection.secret_replaced" in AuditEvent.objects.values_list("action", flat=True)
    assert new_token not in stored
    logged = "\n".join(record.getMessage() for record in caplog.records) + caplog.text
    assert new_token not in logged
    assert audit.get_by_text("connection.secret").count() >= 1
