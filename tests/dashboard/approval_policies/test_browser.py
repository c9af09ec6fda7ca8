"""A policy-triggered two-person approval in a real browser (Debian chromium, Playwright): an
admin adds the policy on its page, a marketer's trigger to more topics than it allows waits, the
first operator's approval leaves it waiting ("1 of 2"), the second sends it: a live server, a
real Celery worker process and the Optimove campaigns sandbox over HTTP."""

from __future__ import annotations

import pytest

from dashboard.models import AuditEvent
from dashboard.runs.models import Run
from dashboard.runs.states import RunState
from tests.browser_support import (  # noqa: F401
    DESKTOP,
    PHONE,
    SCREENSHOTS,
    axe_violations,
    browser,
    console_errors,
    log_in,
    no_overflow,
)
from tests.campaigns.conftest import ARSENAL, campaigns_connection, generator, make_generator  # noqa: F401
from tests.e2e.conftest import (  # noqa: F401 - the e2e harness's fixtures
    e2e_redis,
    wait_for,
    workers,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def accept_dialogs(page, asked: list[str]) -> None:
    page.on("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))


def test_a_trigger_above_the_policy_needs_two_operators(
    team,
    sandboxes,
    generator,  # noqa: F811 - the imported fixture
    workers,  # noqa: F811 - the imported fixture, requested
    live_server,
    browser,  # noqa: F811 - the imported fixture
):
    workers.start(pool="threads", concurrency=4)
    base = f"{live_server.url}/t/acme"

    # Ada, an admin, adds the policy; a threshold that is not a number is refused first.
    ada = log_in(browser, live_server, "ada")
    ada.goto(f"{base}/settings/")
    ada.get_by_role("link", name="approval policies").click()
    ada.get_by_label("Name").fill("Big triggers")
    ada.get_by_label("Operation").select_option("optimove_run_event_generator")
    ada.get_by_label("Topics above").fill("one")
    ada.get_by_label("Approvals needed").fill("2")
    ada.get_by_label("The request expires after (minutes)").fill("60")
    ada.get_by_role("button", name="Add the policy").click()
    ada.get_by_text("'one' is not a whole number.").wait_for()
    assert ada.get_by_label("Name").input_value() == "Big triggers"
    ada.get_by_label("Topics above").fill("1")
    ada.get_by_role("button", name="Add the policy").click()
    ada.get_by_text("Policy 'Big triggers' added.").wait_for()
    assert "topics above 1" in ada.locator("#policy-list").inner_text()

    # Mia, a marketer, triggers the generator for both its topics: more than 1, so it waits.
    mia = log_in(browser, live_server, "mia")
    mia.goto(f"{base}/campaigns/generators/{generator.pk}/trigger/")
    mia.get_by_label("Arsenal").check()
    mia.get_by_label("Chelsea").check()
    mia.locator('input[name="ctx/match_id"]').fill("m-1")
    mia.locator('input[name="ctx/match_name"]').fill("Arsenal vs Chelsea")
    mia.locator('input[name="ctx/start_time"]').fill("2026-02-05T20:00:00")
    mia.locator('input[name="ctx/url"]').fill("https://example.com/match/1")
    mia.locator("#preview-ok").wait_for()
    mia.get_by_role("button", name="Send").click()
    mia.wait_for_url("**/campaigns/triggers/**")
    runs = list(Run.objects.order_by("pk"))
    assert [run.state for run in runs] == [RunState.AWAITING_APPROVAL] * 2
    arsenal = next(run for run in runs if run.parameters["topic_key"] == ARSENAL)
    run_url = f"{base}/runs/{arsenal.pk}/"

    # Mia sees why it waits; she has no approve button (a marketer, and its requester).
    mia.goto(run_url)
    assert (
        "Waiting for 2 more operators to approve it." in mia.locator("#run-approval").inner_text()
    )
    assert mia.get_by_role("button", name="Approve").count() == 0

    # Oscar sees what will be sent and why it waits; his approval is the first of two.
    oscar = log_in(browser, live_server, "oscar")
    oscar.goto(run_url)
    approval = oscar.locator("#run-approval")
    assert "Needs 2 of 3 operators" in approval.inner_text()
    assert "2 topics, above 1; needs 2 approvals (policy 'Big triggers')" in (approval.inner_text())
    assert arsenal.parameters_hash in approval.inner_text()
    oscar.screenshot(path=str(SCREENSHOTS / "triggerdesk-policy-approval.png"), full_page=True)
    asked: list[str] = []
    accept_dialogs(oscar, asked)
    oscar.get_by_role("button", name="Approve (1 of 2)").click()
    oscar.get_by_text("Approved (1 of 2). It waits for 1 more operator").wait_for()
    assert "1 of 2" in oscar.locator("#run-approval-progress").inner_text()
    assert oscar.get_by_role("button", name="Approve (1 of 2)").count() == 0
    assert "It still needs 1 more approval before it is sent." in asked[0]
    arsenal.refresh_from_db()
    assert arsenal.state == RunState.AWAITING_APPROVAL
    assert not sandboxes["optimove_campaigns"].state()["executions"]

    # Olga's approval is the second: the worker sends it and it is published.
    olga = log_in(browser, live_server, "olga")
    olga.goto(run_url)
    assert "oscar at" in olga.locator("#run-approval-progress").inner_text()
    accept_dialogs(olga, [])
    olga.get_by_role("button", name="Approve and send").click()
    olga.get_by_text("Approved. The run is queued and will be sent shortly.").wait_for()
    wait_for(
        lambda: Run.objects.get(pk=arsenal.pk).state == RunState.SUCCEEDED,
        timeout=60,
        message="the approved run to be published",
    )
    # The page follows it live, without a reload.
    olga.locator("#run-status").get_by_text("Succeeded").first.wait_for(timeout=30_000)
    executions = sandboxes["optimove_campaigns"].state()["executions"]
    assert [execution["topic_key"] for execution in executions] == [ARSENAL]
    assert list(
        AuditEvent.objects.filter(object_type="run", object_id=str(arsenal.pk))
        .filter(action__in=["run.approval_recorded", "run.approved"])
        .order_by("pk")
        .values_list("action", "actor_label")
    ) == [("run.approval_recorded", "oscar"), ("run.approved", "olga")]
    # The other topic's run waits for its own two approvals.
    assert Run.objects.get(pk=next(r.pk for r in runs if r.pk != arsenal.pk)).state == (
        RunState.AWAITING_APPROVAL
    )


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["390px", "1280px"])
def test_the_policies_page_fits_the_screen_and_has_no_serious_violation(
    team,
    live_server,
    browser,  # noqa: F811 - the imported fixture
    viewport,
):
    from dashboard.approval_policies.services import policy_create
    from dashboard.audit.trail import Actor

    policy = policy_create(
        actor=Actor(user=team.admin.user),
        tenant=team.tenant,
        data={
            "name": "Nights " + "n" * 70,
            "outside_office_hours": True,
            "office_zone": "Europe/Paris",
            "approvals_needed": "2",
        },
    )
    ada = log_in(browser, live_server, "ada", viewport=viewport)
    console = console_errors(ada)
    for path in ("approval-policies/", f"approval-policies/{policy.pk}/"):
        ada.goto(f"{live_server.url}/t/acme/{path}")
        assert no_overflow(ada), path
        assert axe_violations(ada) == [], path
    # A refused form (its errors shown) fits too.
    ada.get_by_label("Approvals needed").fill("many")
    ada.get_by_role("button", name="Save the policy").click()
    ada.get_by_text("'many' is not a whole number.").wait_for()
    assert no_overflow(ada) and axe_violations(ada) == []
    # The refused form's own status (422) is the one error the console may show.
    assert [line for line in console if "status of 422" not in line] == []
