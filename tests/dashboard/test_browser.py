"""The pages in a real browser (headless Debian chromium, Playwright) against a live server:
confirmations (issue 9, item 12), every page on a phone (item 13), the offline banner (item 15),
filters after Back (item 17).

No worker is needed: nothing here is sent to a vendor.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from batchjobs.models import BatchJob
from dashboard.audit.trail import Actor
from dashboard.clock import utc_now
from dashboard.runs.services import run_reject
from dashboard.runs.states import RunState
from tests.batchjobs.test_browser import SCREENSHOTS, browser, log_in  # noqa: F401 - fixture
from tests.factories import AuditEventFactory, RunAttemptFactory, RunFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LONG = "x" * 500  # one unbroken word: the comment that made a run page 5,139 px wide
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def needs_person(team, **fields):
    run = RunFactory(
        tenant=team.tenant,
        state=RunState.OUTCOME_UNKNOWN,
        requested_by=team.marketer.user,
        needs_person=True,
        attempt_count=1,
        sent_at=utc_now(),
        failure_class="outcome_unknown",
        failure_code="timeout",
        **{"failure_message": "The vendor did not answer within 30 s.", **fields},
    )
    RunAttemptFactory(run=run, status_code=None, failure_class="outcome_unknown", outcome="none")
    return run


def test_mark_as_sent_and_send_again_ask_first_and_cancel_sends_nothing(
    team,
    live_server,
    browser,  # noqa: F811 - the imported fixture
):
    run = needs_person(team)
    page = log_in(browser, live_server, "oscar")
    page.goto(f"{live_server.url}/t/acme/runs/{run.pk}/")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    asked: list[str] = []

    def dismiss(dialog):
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    form = page.locator("#mark-as-sent-form")
    form.locator("textarea, input[type=text]").first.fill("Seen in the vendor's UI")
    form.get_by_role("checkbox").check()
    form.get_by_role("button", name="Mark as sent").click()
    assert asked == [f"Record run #{run.pk} as sent? It will not be sent again."]

    page.once("dialog", dismiss)
    again = page.locator("#send-again-form")
    again.locator("textarea, input[type=text]").first.fill("Not in the vendor's UI")
    again.get_by_role("checkbox").check()
    again.get_by_role("button", name="Send again").click()
    assert len(asked) == 2 and asked[1].startswith(f"Send run #{run.pk} to the vendor again?")

    # Cancelled twice: still on the page, nothing submitted, nothing changed.
    assert page.url == f"{live_server.url}/t/acme/runs/{run.pk}/"
    run.refresh_from_db()
    assert run.state == RunState.OUTCOME_UNKNOWN and run.needs_person
    assert errors == []  # no "confirm is not a function"

    # Accepted: the form goes out.
    page.once("dialog", lambda dialog: dialog.accept())
    form.get_by_role("button", name="Mark as sent").click()
    page.get_by_text("Marked as sent, with your evidence recorded.").wait_for()
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED


def phone_data(team, sandbox_connection):
    """Everything the pages show, with long unbroken text wherever a person can type some."""
    sandbox_connection(team.tenant, "optimove_batch", name="Optimove " + "n" * 100)
    talkifai = sandbox_connection(team.tenant, "talkifai", name="TalkifAI")
    job = BatchJob.objects.create(
        tenant=team.tenant,
        connection=talkifai,
        batch_job_id="job-running-001",
        name="Reminders " + "r" * 180,
        registered_at=utc_now(),
    )
    rejected = RunFactory(
        tenant=team.tenant,
        connection=talkifai,
        requested_by=team.marketer.user,
        parameters={"batch_job_id": "job-" + "y" * 150, "batch_job_name": "z" * 300},
    )
    run_reject(actor=Actor(user=team.operator.user), run=rejected, comment=LONG)
    unknown = needs_person(team, connection=talkifai, failure_message="w" * 400)
    RunFactory(tenant=team.tenant, connection=talkifai, requested_by=team.marketer.user)
    AuditEventFactory(
        tenant=team.tenant, action="test.long", summary={"note": LONG, "x": {"from": LONG, "to": 1}}
    )
    return {"rejected": rejected, "unknown": unknown, "job": job, "connection": talkifai}


def every_page(data) -> list[str]:
    slug = "/t/acme"
    connection = data["connection"].pk
    return [
        f"{slug}/",
        f"{slug}/batch/daily/",
        f"{slug}/batch/jobs/",
        f"{slug}/batch/jobs/{data['job'].pk}/start/",
        f"{slug}/runs/",
        f"{slug}/runs/{data['rejected'].pk}/",
        f"{slug}/runs/{data['unknown'].pk}/",
        f"{slug}/connections/",
        f"{slug}/connections/{connection}/",
        f"{slug}/connections/{connection}/edit/",
        f"{slug}/connections/new/",
        f"{slug}/members/",
        f"{slug}/settings/",
        f"{slug}/audit/",
        f"{slug}/no-such-page/",  # the 404 page
        reverse("password_change"),
    ]


def page_width(page) -> int:
    return page.evaluate("document.scrollingElement.scrollWidth")


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["390px", "1280px"])
def test_no_page_is_wider_than_the_screen(
    team,
    sandboxes,
    sandbox_connection,
    live_server,
    browser,  # noqa: F811 - the imported fixture
    viewport,
):
    data = phone_data(team, sandbox_connection)
    context = browser.new_context(viewport=viewport, timezone_id="UTC", locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{live_server.url}/login/")
    assert page_width(page) <= viewport["width"], "login"
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", "correct horse battery staple")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/t/**")
    too_wide = {}
    for path in every_page(data):
        page.goto(live_server.url + path)
        page.wait_for_load_state("load")
        if path.endswith("/batch/jobs/"):
            # The rows load TalkifAI's status after the page; measure with them.
            page.locator(f"#job-{data['job'].pk}").get_by_text("contacts called").wait_for()
        width = page_width(page)
        if width > viewport["width"]:
            too_wide[path] = width
        if viewport is PHONE:
            name = re.sub(r"\W+", "-", path.strip("/")) or "home"
            page.screenshot(path=str(SCREENSHOTS / f"triggerdesk-390-{name}.png"), full_page=True)
    # The 403 page, as a marketer.
    mia = log_in(browser, live_server, "mia")
    mia.set_viewport_size(viewport)
    mia.goto(f"{live_server.url}/t/acme/settings/")
    mia.get_by_text("Your role (Marketer) cannot do this.").wait_for()
    if page_width(mia) > viewport["width"]:
        too_wide["403"] = page_width(mia)
    assert too_wide == {}
    context.close()


def test_an_offline_banner_appears_while_polls_fail_and_goes_when_they_work(
    team,
    live_server,
    browser,  # noqa: F811 - the imported fixture
):
    run = RunFactory(tenant=team.tenant, requested_by=team.marketer.user)  # open: polls every 2 s
    page = log_in(browser, live_server, "aude")
    page.goto(f"{live_server.url}/t/acme/runs/{run.pk}/")
    banner = page.locator("#offline-banner")
    assert banner.is_hidden()
    note = page.locator(".live-note")
    assert note.is_visible()

    # The server goes away for this page's polls: the request fails before any answer.
    page.route(re.compile(rf".*/runs/{run.pk}/\?seen=.*"), lambda route: route.abort())
    banner.wait_for(state="visible")
    assert "Offline since" in banner.inner_text()
    assert "cannot be reached" in banner.inner_text()
    assert note.is_hidden()  # no "refreshes every 2 seconds" while it does not

    page.unroute(re.compile(rf".*/runs/{run.pk}/\?seen=.*"))
    banner.wait_for(state="hidden")
    assert note.is_visible()


def test_back_after_filtering_shows_the_filter_of_the_list_shown(
    team,
    live_server,
    browser,  # noqa: F811 - the imported fixture
):
    RunFactory(tenant=team.tenant, requested_by=team.marketer.user)  # awaiting approval
    cancelled = RunFactory(
        tenant=team.tenant, requested_by=team.marketer.user, state=RunState.CANCELLED
    )
    page = log_in(browser, live_server, "aude")
    page.goto(f"{live_server.url}/t/acme/runs/")
    state = page.locator("select[name=state]")

    state.select_option("cancelled")
    page.wait_for_url(re.compile(r".*\?.*state=cancelled"))
    page.locator("#runs").get_by_text(f"#{cancelled.pk}").wait_for()
    state.select_option("awaiting_approval")
    page.wait_for_url(re.compile(r".*\?.*state=awaiting_approval"))
    page.locator(f"#run-{cancelled.pk}").wait_for(state="detached")

    page.go_back()
    page.wait_for_url(re.compile(r".*\?.*state=cancelled"))
    page.locator(f"#run-{cancelled.pk}").wait_for()
    assert state.input_value() == "cancelled"

    page.go_back()
    page.wait_for_url(f"{live_server.url}/t/acme/runs/")
    page.wait_for_function("document.querySelector('select[name=state]').value === ''")


def test_the_tenant_switcher_and_a_session_that_ended_under_a_live_page(
    team,
    other_team,
    live_server,
    browser,  # noqa: F811 - the imported fixture
):
    from dashboard.models import Role
    from tests.factories import MembershipFactory

    MembershipFactory(tenant=other_team.tenant, user=team.admin.user, role=Role.AUDITOR)
    run = RunFactory(tenant=team.tenant, requested_by=team.marketer.user)  # open: polls every 2 s
    page = log_in(browser, live_server, "ada")
    page.goto(f"{live_server.url}/t/acme/")
    page.get_by_label("Switch tenant").select_option(label="Other Brand (Auditor)")
    page.wait_for_url(f"{live_server.url}/t/other/")

    page.goto(f"{live_server.url}/t/acme/runs/{run.pk}/")
    page.context.clear_cookies()  # logged out elsewhere, or the session expired
    # The next poll is answered by the login page: the browser goes there (and back after).
    page.wait_for_url(re.compile(rf".*/login/\?next=%2Ft%2Facme%2Fruns%2F{run.pk}%2F$"))
    assert page.locator("#run-status").count() == 0


def test_revoking_a_token_asks_first_and_dismissing_changes_nothing(
    team,
    make_token,
    live_server,
    browser,  # noqa: F811 - the imported fixture
):
    token, _ = make_token("operator", name="nightly export")
    page = log_in(browser, live_server, "oscar")
    page.goto(f"{live_server.url}/t/acme/api-tokens/")
    asked: list[str] = []

    def dismiss(dialog):
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.locator(f"form[action='/t/acme/api-tokens/{token.pk}/revoke/']").get_by_role(
        "button", name="Revoke"
    ).click()
    assert asked and asked[0].startswith("Revoke the token nightly export?")
    assert page.url == f"{live_server.url}/t/acme/api-tokens/"
    token.refresh_from_db()
    assert token.revoked_at is None

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(f"form[action='/t/acme/api-tokens/{token.pk}/revoke/']").get_by_role(
        "button", name="Revoke"
    ).click()
    page.get_by_text("revoked; it no longer works.").wait_for()
    token.refresh_from_db()
    assert token.revoked_at is not None
