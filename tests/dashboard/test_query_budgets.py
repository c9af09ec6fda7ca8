"""What a page and a live fragment cost in queries, whatever the history's size (issue 12).

Each live (htmx-polled) fragment stays within LIVE_FRAGMENT_BUDGET queries for a logged-in member:
the session is read through Redis, the user comes with the membership in one query, and the
fragment reads its own few rows. Each full page has a fixed budget, asserted with 3 rows and with
30, and the two counts must be equal: nothing is fetched per row.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse

from dashboard.clock import utc_now
from dashboard.runs.models import Operation
from dashboard.runs.states import RunState
from tests.factories import ApprovalFactory, AuditEventFactory, RunAttemptFactory, RunFactory

pytestmark = pytest.mark.django_db

LIVE_FRAGMENT_BUDGET = 3


def make_runs(team, count: int) -> list:
    runs = []
    for n in range(count):
        run = RunFactory(
            tenant=team.tenant,
            state=RunState.ACCEPTED if n % 2 else RunState.SUCCEEDED,
            requested_by=team.marketer.user,
            vendor_reference=f"exec-{n}",
        )
        ApprovalFactory(run=run, decided_by=team.operator.user)
        RunAttemptFactory(run=run)
        runs.append(run)
    return runs


def same_cost_at_3_and_30(team, count_queries, django_assert_max_num_queries, *, budget, request):
    """Measure `request(client)` -> (url, params, htmx) with 3 rows, then with 30."""
    client = team.client_for("operator")
    make_runs(team, 3)
    url, params, htmx = request()
    few = count_queries(client, url, params, htmx=htmx)[1]
    make_runs(team, 27)
    with django_assert_max_num_queries(budget):
        response, many = count_queries(client, url, params, htmx=htmx)
    assert response.status_code in (200, 286)
    assert few == many, f"{few} queries with 3 rows, {many} with 30"
    return response


RUN_LIST_FILTERS = [
    {},
    {"state": RunState.ACCEPTED},
    {"operation": Operation.TALKIFAI_START_BATCH_JOB},
    {"connection": "first"},
    {"requester": "marketer"},
    {"approver": "operator"},
    {"created_from": "today"},
    {"created_to": "today"},
    {"vendor_reference": "exec-1"},
]


@pytest.mark.parametrize("filters", RUN_LIST_FILTERS, ids=lambda f: next(iter(f), "none"))
def test_run_history_costs_the_same_at_any_size_with_every_filter(
    team, count_queries, django_assert_max_num_queries, filters
):
    def request():
        params = dict(filters)
        if params.get("connection") == "first":
            params["connection"] = team.tenant.connections.order_by("pk").first().pk
        for key in ("requester", "approver"):
            if key in params:
                params[key] = getattr(team, params[key]).user.pk
        for key in ("created_from", "created_to"):
            if key in params:
                params[key] = utc_now().date().isoformat()
        return reverse("run_list", args=["acme"]), params, False

    # membership+user, the tenant switcher, runs, approvals, the estimate, the connection and
    # people choice lists (three), a chosen connection or person checked (one), the badge count
    same_cost_at_3_and_30(
        team, count_queries, django_assert_max_num_queries, budget=10, request=request
    )


def test_run_history_next_page_costs_the_same_as_the_first(team, count_queries):
    make_runs(team, 60)
    client = team.client_for("operator")
    url = reverse("run_list", args=["acme"])
    first, first_count = count_queries(client, url)
    cursor = first.context["page"].next_cursor.encode()
    second, second_count = count_queries(client, url, {"after": cursor})
    assert second.status_code == 200 and len(second.context["page"]) == 10
    # The next page shows no estimate: one query fewer, never more.
    assert second_count <= first_count


def test_run_history_live_fragment(team, count_queries, django_assert_max_num_queries):
    make_runs(team, 30)
    client = team.client_for("operator")
    url = reverse("run_list", args=["acme"])
    client.get(url)  # the page, as the browser loaded it: its estimate is remembered a minute
    with django_assert_max_num_queries(LIVE_FRAGMENT_BUDGET):
        response = client.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 200  # an accepted run on the page: it keeps polling
    assert 'hx-trigger="every 2s"' in response.content.decode()


def test_run_history_fragment_stops_polling_when_nothing_on_it_can_change(
    team, django_assert_max_num_queries
):
    RunFactory(tenant=team.tenant, state=RunState.SUCCEEDED)
    client = team.client_for("operator")
    url = reverse("run_list", args=["acme"])
    client.get(url)
    with django_assert_max_num_queries(LIVE_FRAGMENT_BUDGET):
        response = client.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 286


def test_run_page_and_its_live_block(team, count_queries, django_assert_max_num_queries):
    def request():
        run = RunFactory(tenant=team.tenant, state=RunState.ACCEPTED)
        ApprovalFactory(run=run, decided_by=team.operator.user)
        RunAttemptFactory(run=run)
        request.run = run
        return reverse("run_detail", args=["acme", run.pk]), {}, False

    # membership+user, run, approvals, attempts, timeline, tenant switcher, badge count
    same_cost_at_3_and_30(
        team, count_queries, django_assert_max_num_queries, budget=7, request=request
    )
    run = request.run
    client = team.client_for("operator")
    url = reverse("run_detail", args=["acme", run.pk])
    with django_assert_max_num_queries(LIVE_FRAGMENT_BUDGET):
        response = client.get(url, {"seen": "accepted:0"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and 'id="run-status"' in response.content.decode()
    run.state = RunState.SUCCEEDED
    run.save(update_fields=["state"])
    with django_assert_max_num_queries(LIVE_FRAGMENT_BUDGET):
        response = client.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 286  # a finished run: the poll stops


def test_audit_list_costs_the_same_at_any_size(team, count_queries, django_assert_max_num_queries):
    client = team.client_for("auditor")
    url = reverse("audit_list", args=["acme"])
    for _ in range(3):
        AuditEventFactory(tenant=team.tenant, action="run.approved")
    few = count_queries(client, url)[1]
    for _ in range(27):
        AuditEventFactory(tenant=team.tenant, action="run.approved")
    # membership+user, actor choices, action choices (one skip scan), events, last
    # verification, tenant switcher
    with django_assert_max_num_queries(6):
        response, many = count_queries(client, url)
    assert few == many
    assert len(response.context["page"]) == 30
    filtered = count_queries(client, url, {"action": "run.", "actor": "factory"})[1]
    assert filtered == many


def test_overview_and_its_live_list(team, count_queries, django_assert_max_num_queries):
    def request():
        RunFactory(tenant=team.tenant, requested_by=team.marketer.user)  # awaits approval
        RunFactory(tenant=team.tenant, state=RunState.FAILED, failure_message="refused")
        return reverse("tenant_home", args=["acme"]), {}, False

    # membership+user, attention, recent, in progress, failures (and their approvals), waiting
    # for me, activity, vendor health, badge count, tenant switcher, the campaigns card's
    # schedules, connections and their secrets' hints
    same_cost_at_3_and_30(
        team, count_queries, django_assert_max_num_queries, budget=14, request=request
    )
    client = team.client_for("operator")
    with django_assert_max_num_queries(LIVE_FRAGMENT_BUDGET):
        response = client.get(reverse("tenant_home", args=["acme"]), HTTP_HX_REQUEST="true")
    assert 'id="needs-a-person"' in response.content.decode()


def test_live_fragments_keep_tenant_isolation_and_logins(team, other_team):
    run = RunFactory(tenant=team.tenant, state=RunState.ACCEPTED)
    url = reverse("run_detail", args=["acme", run.pk])
    outsider = other_team.client_for("operator")
    assert outsider.get(url, HTTP_HX_REQUEST="true").status_code == 404
    foreign = reverse("run_detail", args=["other", run.pk])
    assert team.client_for("operator").get(foreign, HTTP_HX_REQUEST="true").status_code == 404
    from django.test import Client

    anonymous = Client().get(url, HTTP_HX_REQUEST="true")
    assert anonymous.status_code == 302 and "/login" in anonymous["Location"]


def test_a_session_whose_password_changed_is_logged_out_on_a_fragment(team):
    run = RunFactory(tenant=team.tenant, state=RunState.ACCEPTED)
    client = team.client_for("operator")
    url = reverse("run_detail", args=["acme", run.pk])
    assert client.get(url, HTTP_HX_REQUEST="true").status_code == 200
    user = team.operator.user
    user.set_password("a-new-password-42")
    user.save()
    response = client.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 302 and "/login" in response["Location"]


def test_an_inactive_user_is_logged_out_on_a_fragment(team):
    run = RunFactory(tenant=team.tenant, state=RunState.ACCEPTED)
    client = team.client_for("operator")
    url = reverse("run_detail", args=["acme", run.pk])
    team.operator.user.is_active = False
    team.operator.user.save()
    response = client.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 302


def test_a_role_change_applies_to_the_next_poll(team):
    from dashboard.models import Role

    client = team.client_for("operator")
    url = reverse("daily_trigger", args=["acme"])
    assert client.get(reverse("audit_list", args=["acme"])).status_code == 403
    team.operator.role = Role.AUDITOR
    team.operator.save()
    assert client.get(reverse("audit_list", args=["acme"])).status_code == 200
    assert client.get(url, HTTP_HX_REQUEST="true").status_code == 200


def _walk_pages(client, url, params) -> tuple[list[int], int]:
    """Follow the "Older" cursor from the first page to the last: the ids in order, the pages."""
    seen, cursor, pages = [], None, 0
    while True:
        response = client.get(url, {**params, **({"after": cursor} if cursor else {})})
        page = response.context["page"]
        seen += [row.pk for row in page]
        pages += 1
        if not page.has_next:
            return seen, pages
        cursor = page.next_cursor.encode()


def test_audit_pages_neither_skip_nor_repeat_events_sharing_a_timestamp(team, monkeypatch):
    from dashboard.audit import trail as audit

    # One newer event, 60 on one timestamp straddling the page boundary at 50, 45 older ones.
    moment = utc_now().replace(microsecond=0)
    events = []
    for at, count in (
        (moment + timedelta(seconds=1), 1),
        (moment, 60),
        (moment - timedelta(seconds=1), 45),
    ):
        monkeypatch.setattr(audit.timezone, "now", lambda at=at: at)
        events += [
            AuditEventFactory(tenant=team.tenant, action="run.approved") for _ in range(count)
        ]
    monkeypatch.undo()

    seen, pages = _walk_pages(
        team.client_for("auditor"), reverse("audit_list", args=["acme"]), {"action": "run."}
    )

    expected = sorted(events, key=lambda event: (event.created_at, event.pk), reverse=True)
    assert seen == [event.pk for event in expected]
    assert len(set(seen)) == 106 and pages == 3


def test_run_history_pages_neither_skip_nor_repeat_runs_sharing_a_timestamp(team, monkeypatch):
    from dashboard.runs import views
    from dashboard.runs.models import Run

    monkeypatch.setattr(views, "PAGE_SIZE", 3)
    moment = utc_now().replace(microsecond=0)
    moments = [moment + timedelta(seconds=1)] + [moment] * 7 + [moment - timedelta(seconds=1)] * 2
    runs = [RunFactory(tenant=team.tenant, state=RunState.SUCCEEDED) for _ in moments]
    for run, at in zip(runs, moments, strict=True):
        Run.objects.filter(pk=run.pk).update(created_at=at)
        run.created_at = at

    seen, pages = _walk_pages(
        team.client_for("auditor"), reverse("run_list", args=["acme"]), {"state": "succeeded"}
    )

    expected = sorted(runs, key=lambda run: (run.created_at, run.pk), reverse=True)
    assert seen == [run.pk for run in expected]
    assert pages == 4
