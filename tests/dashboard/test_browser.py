"""The pages in a real browser (headless Debian chromium, Playwright) against a live server:
confirmations (issue 9, item 12), every page on a phone (item 13), the offline banner (item 15),
filters after Back (item 17).

No worker is needed: nothing here is sent to a vendor.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse

from batchjobs.models import BatchJob
from dashboard.audit.trail import Actor
from dashboard.clock import utc_now
from dashboard.runs.services import run_reject
from dashboard.runs.states import RunState
from tests.browser_support import (  # noqa: F401 - the browser fixture
    DESKTOP,
    PHONE,
    axe_violations,
    browser,
    console_errors,
    log_in,
    no_overflow,
    page_width,
    screenshot,
    widest_elements,
)
from tests.factories import PASSWORD, AuditEventFactory, RunAttemptFactory, RunFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LONG = "x" * 500  # one unbroken word: the comment that made a run page 5,139 px wide


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


def phone_data(team, sandbox_connection, settings, tmp_path):
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
    from dashboard.approval_policies.services import policy_create

    policy = policy_create(
        actor=Actor(user=team.admin.user),
        tenant=team.tenant,
        data={
            "name": "Big " + "p" * 70,
            "topics_above": "20",
            "outside_office_hours": True,
            "office_zone": "America/Argentina/Buenos_Aires",
            "approvals_needed": "2",
        },
    )
    return {
        "rejected": rejected,
        "unknown": unknown,
        "job": job,
        "policy": policy,
        "connection": talkifai,
        # Their sessions page: the admin's own sessions are listed there (this test's browser).
        "member": team.admin,
        **campaign_data(team, sandbox_connection),
        **altcraft_data(team, sandbox_connection, settings, tmp_path),
    }


def campaign_data(team, sandbox_connection) -> dict:
    """An event generator with a long name, long topics and a long context: triggered (a group
    of runs) and scheduled."""
    from campaigns.event_generators import services as generators
    from tests.campaigns.conftest import ARSENAL, CHELSEA, GOOD_CONTEXT, MATCH_SCHEMA

    connection = sandbox_connection(team.tenant, "optimove_campaigns", name="Optimove " + "o" * 90)
    ada = Actor(user=team.admin.user)
    generator = generators.generator_create(
        actor=ada,
        tenant=team.tenant,
        connection=connection,
        external_id="00000000-abcd-abcd-abcd-000000000000",
        name="Match start " + "g" * 100,
        topics=[(ARSENAL, "Arsenal " + "a" * 100), (CHELSEA, "Chelsea")],
        schema=MATCH_SCHEMA,
    )
    context = {**GOOD_CONTEXT, "match_name": "m" * 200, "url": "https://example.com/" + "u" * 200}
    group = generators.campaign_trigger(
        actor=ada,
        generator=generator,
        topic_keys=[ARSENAL, CHELSEA],
        context=context,
        idempotency_key="phone-1",
    )
    schedule = generators.schedule_create(
        actor=ada,
        generator=generator,
        topic_keys=[ARSENAL],
        context={**context, "match_name": "later " + "s" * 200},
        fire_at=utc_now() + timedelta(days=2),
    )
    from dashboard.recurring import services as recurring

    recurring_schedule = recurring.schedule_create(
        actor=ada,
        tenant=team.tenant,
        data=recurring.ScheduleInput(
            name="Every weekday " + "r" * 100,
            cron="0 9 * * 1-5",
            time_zone="Europe/Berlin",
            target_kind="event_generator",
            target_input={"id": generator.pk, "topics": [ARSENAL], "context": context},
        ),
    )
    return {
        "generator": generator,
        "group": group,
        "campaign_run": group.campaign_runs.first().run,
        "schedule": schedule,
        "recurring": recurring_schedule,
    }


def altcraft_data(team, sandbox_connection, settings, tmp_path) -> dict:
    """An Altcraft trigger with a long name: a bulk launch read and waiting for its confirmation,
    and an import waiting for its column mapping."""
    from campaigns.altcraft_launches import services as altcraft

    settings.ALTCRAFT_UPLOAD_DIR = tmp_path / "uploads"
    ada = Actor(user=team.admin.user)
    connection = sandbox_connection(team.tenant, "altcraft", name="Altcraft " + "c" * 90)
    trigger = altcraft.trigger_register(
        actor=ada,
        tenant=team.tenant,
        connection=connection,
        trigger_id=8,
        name="Abandoned cart " + "t" * 150,
        content_fields=["page"],
        resource_id=21,
    )
    rows = "email,page\n" + "".join(f"user{n}@example.com,/p/{'q' * 120}\n" for n in range(30))
    launches = {}
    for kind in ("start_batch", "import"):
        launch = altcraft.launch_create(
            actor=ada,
            trigger=trigger,
            kind=kind,
            upload=altcraft.upload_store(pieces=[rows.encode()]),
            source_name="recipients-" + "f" * 150 + ".csv",
            parameters={"matching": "email"},
            idempotency_key=f"phone-{kind}",
        )
        if kind == "start_batch":
            launch = altcraft.launch_prepare(actor=ada, launch=launch, mapping=None)
        launches[kind] = launch
    return {"launch": launches["start_batch"], "import": launches["import"]}


def every_page(data) -> list[str]:
    """Every page of the product a signed-in admin reaches (the 403 and the pages of people
    who are not signed in are visited apart)."""
    slug = "/t/acme"
    connection = data["connection"].pk
    generator = data["generator"].pk
    return [
        f"{slug}/",
        f"{slug}/batch/daily/",
        f"{slug}/batch/jobs/",
        f"{slug}/batch/jobs/{data['job'].pk}/start/",
        f"{slug}/campaigns/",
        f"{slug}/campaigns/settings/",
        f"{slug}/campaigns/generators/new/",
        f"{slug}/campaigns/generators/{generator}/",
        f"{slug}/campaigns/generators/{generator}/edit/",
        f"{slug}/campaigns/generators/{generator}/trigger/",
        f"{slug}/campaigns/runs/{data['campaign_run'].pk}/",
        f"{slug}/campaigns/triggers/{data['group'].pk}/",
        f"{slug}/campaigns/schedules/",
        f"{slug}/campaigns/schedules/{data['schedule'].pk}/edit/",
        f"{slug}/campaigns/altcraft/",
        f"{slug}/campaigns/altcraft/launches/new/",
        f"{slug}/campaigns/altcraft/launches/{data['launch'].pk}/",
        f"{slug}/campaigns/altcraft/launches/{data['import'].pk}/mapping/",
        f"{slug}/runs/",
        f"{slug}/runs/{data['rejected'].pk}/",
        f"{slug}/runs/{data['unknown'].pk}/",
        f"{slug}/connections/",
        f"{slug}/connections/{connection}/",
        f"{slug}/connections/{connection}/edit/",
        f"{slug}/connections/new/",
        f"{slug}/members/",
        f"{slug}/members/{data['member'].pk}/sessions/",
        f"{slug}/settings/",
        f"{slug}/settings/chat/",
        f"{slug}/approval-policies/",
        f"{slug}/approval-policies/{data['policy'].pk}/",
        f"{slug}/recurring/",
        f"{slug}/recurring/{data['recurring'].pk}/",
        f"{slug}/recurring/calendar/",
        f"{slug}/recurring/calendar/?view=month",
        f"{slug}/sso/",
        f"{slug}/audit/",
        f"{slug}/api-tokens/",
        "/api/v1/docs",
        ERROR_PAGE,
        reverse("password_change"),
        reverse("preferences"),
        reverse("account_sessions"),
        reverse("mfa_security"),
    ]


ERROR_PAGE = "/t/acme/no-such-page/"  # the 404 page
# The pages of someone who is not signed in.
SIGNED_OUT_PAGES = [
    "/login/",
    "/account/password/forgot/",
    "/account/password/forgot/sent/",
    "/account/password/reset/MQ/no-such-token/",  # the "link no longer works" page
    "/invite/MQ/no-such-token/",
]


def visit(page, live_server, path: str, data: dict) -> None:
    """Open `path` and wait until what loads after the page has loaded too."""
    page.goto(live_server.url + path)
    page.wait_for_load_state("load")
    if path.endswith("/batch/jobs/"):
        # The rows load TalkifAI's status after the page; measure with them.
        page.locator(f"#job-{data['job'].pk}").get_by_text("contacts called").wait_for()
    if path == "/api/v1/docs":
        # As a reader uses it: an operation opened (parameters, examples) and the schemas. Swagger
        # UI builds the page from the whole OpenAPI document (43 operations) in the browser: on a
        # loaded machine that alone can take longer than the other pages' 15 s.
        generous = 90_000
        page.locator(".opblock-post .opblock-summary-control").first.click(timeout=generous)
        page.locator(".opblock-body .highlight-code pre[tabindex]").first.wait_for(timeout=generous)
        page.locator(".models-control").click(timeout=generous)


def each_page(chromium, live_server, data, viewport):
    """(name, page, console) for every page, signed out, signed in as an admin, and the 403 page
    as a marketer sees it; console: what that page has logged as an error so far."""
    context = chromium.new_context(viewport=viewport, timezone_id="UTC", locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(15_000)
    console = console_errors(page)
    for path in SIGNED_OUT_PAGES:
        console.clear()
        visit(page, live_server, path, data)
        yield path, page, console
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/t/**")
    for path in every_page(data):
        console.clear()
        visit(page, live_server, path, data)
        yield path, page, console
    context.close()
    mia = log_in(chromium, live_server, "mia", viewport=viewport)
    console = console_errors(mia)
    mia.goto(f"{live_server.url}/t/acme/settings/")
    mia.get_by_text("Your role (Marketer) cannot do this.").wait_for()
    yield "403", mia, console
    mia.context.close()


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["390px", "1280px"])
def test_no_page_is_wider_than_the_screen(
    team,
    sandboxes,
    sandbox_connection,
    settings,
    tmp_path,
    live_server,
    browser,  # noqa: F811 - the imported fixture
    viewport,
):
    data = phone_data(team, sandbox_connection, settings, tmp_path)
    too_wide = {}
    for path, page, _ in each_page(browser, live_server, data, viewport):
        if not no_overflow(page):
            too_wide[path] = (page_width(page), widest_elements(page))
        if viewport is PHONE:
            screenshot(page, path)
    assert too_wide == {}, "\n".join(f"{path}: {found}" for path, found in too_wide.items())


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["390px", "1280px"])
def test_no_page_has_a_serious_accessibility_violation(
    team,
    sandboxes,
    sandbox_connection,
    settings,
    tmp_path,
    live_server,
    browser,  # noqa: F811 - the imported fixture
    viewport,
):
    data = phone_data(team, sandbox_connection, settings, tmp_path)
    found = {}
    logged = {}
    for path, page, console in each_page(browser, live_server, data, viewport):
        violations = axe_violations(page)
        if violations:
            found[path] = violations
        # An error page's own status is the one error its console may show.
        errors = [
            line
            for line in console
            if not (path in ("403", ERROR_PAGE) and line.startswith("Failed to load resource"))
        ]
        if errors:
            logged[path] = errors
    assert found == {}, "\n".join(
        f"{path}: {line}" for path, lines in found.items() for line in lines
    )
    assert logged == {}


def test_on_a_phone_the_menu_folds_behind_a_button_that_works_with_a_keyboard(
    team,
    other_team,
    live_server,
    browser,  # noqa: F811 - the imported fixture
):
    from dashboard.models import Role
    from tests.factories import MembershipFactory

    MembershipFactory(tenant=other_team.tenant, user=team.admin.user, role=Role.AUDITOR)
    RunFactory(tenant=team.tenant, requested_by=team.marketer.user)  # awaiting approval
    page = log_in(browser, live_server, "ada", viewport=PHONE)
    errors = console_errors(page)
    page.goto(f"{live_server.url}/t/acme/")
    button = page.get_by_role("button", name="Menu")
    nav = page.get_by_role("navigation", name="Main")
    assert button.get_attribute("aria-expanded") == "false"
    assert nav.is_hidden()
    # What needs doing stays in sight with the menu closed.
    assert page.locator("#approvals-waiting").is_visible()
    assert no_overflow(page)

    # Keyboard: the button is reached with Tab and opens with Enter.
    page.keyboard.press("Tab")
    for _ in range(5):
        if page.evaluate("document.activeElement.classList.contains('menu-toggle')"):
            break
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert button.get_attribute("aria-expanded") == "true"
    menu = page.locator("#" + button.get_attribute("aria-controls"))
    for name in ("Overview", "Daily trigger", "Campaigns", "Runs", "Connections", "Settings"):
        assert nav.get_by_role("link", name=name, exact=True).is_visible()
    assert menu.get_by_role("link", name="API tokens").is_visible()
    assert menu.get_by_role("button", name="Log out").is_visible()
    assert no_overflow(page)
    # The tenant selector shows its whole choice, not a clipped one.
    switcher = page.get_by_label("Switch tenant")
    assert switcher.is_visible()
    assert page.evaluate(
        """() => {
            const select = document.querySelector("select[data-navigate]");
            const style = getComputedStyle(select);
            const context = document.createElement("canvas").getContext("2d");
            context.font = style.font;
            const text = context.measureText(select.selectedOptions[0].text).width;
            return text + 24 <= select.clientWidth;  // 24 px: the arrow and padding
        }"""
    )
    assert axe_violations(page) == []
    screenshot(page, "menu-open")

    # Escape closes it and gives the focus back to the button.
    nav.get_by_role("link", name="Runs", exact=True).focus()
    page.keyboard.press("Escape")
    assert button.get_attribute("aria-expanded") == "false"
    assert nav.is_hidden()
    assert page.evaluate("document.activeElement.classList.contains('menu-toggle')")

    # A click opens it too, and a link in it goes where it says.
    button.click()
    nav.get_by_role("link", name="Connections").click()
    page.wait_for_url(f"{live_server.url}/t/acme/connections/")
    assert errors == []

    # On a wide screen there is no button: the navigation is in the top bar.
    page.set_viewport_size(DESKTOP)
    assert button.is_hidden() and nav.is_visible()


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
