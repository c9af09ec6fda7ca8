"""Run history and audit review at scale: keyset pages, filters, CSV export, query counts,
read-only auditors, tenant isolation (issue 12)."""

import csv
import io
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from dashboard.clock import utc_now
from dashboard.models import AuditEvent
from dashboard.runs import selectors
from dashboard.runs.models import Run
from dashboard.runs.states import RunState
from dashboard.tenancy.history import Cursor, csv_safe, keyset_page
from tests.factories import ApprovalFactory, AuditEventFactory, RunAttemptFactory, RunFactory

pytestmark = pytest.mark.django_db


def _runs_at(tenant, moments, **fields):
    runs = [RunFactory(tenant=tenant, **fields) for _ in moments]
    for run, moment in zip(runs, moments, strict=True):
        Run.objects.filter(pk=run.pk).update(created_at=moment)
    return runs


def _walk(queryset, size):
    """Every page, following "more" links, as lists of ids."""
    pages, cursor = [], None
    while True:
        page = keyset_page(queryset, cursor=cursor, size=size)
        pages.append([row.pk for row in page])
        if not page.has_next:
            return pages
        cursor = Cursor.decode(page.next_cursor.encode())


def test_keyset_pages_neither_skip_nor_repeat_rows_sharing_a_timestamp(team):
    moment = utc_now().replace(microsecond=0)
    # Seven runs on one timestamp straddling page boundaries of 3, plus older and newer ones.
    runs = _runs_at(
        team.tenant,
        [moment + timedelta(seconds=1)] + [moment] * 7 + [moment - timedelta(seconds=1)] * 2,
    )
    pages = _walk(selectors.run_list(tenant=team.tenant), size=3)
    flat = [pk for page in pages for pk in page]
    expected = [runs[0].pk, *sorted((r.pk for r in runs[1:8]), reverse=True)]
    expected += sorted((r.pk for r in runs[8:]), reverse=True)
    assert flat == expected
    assert [len(page) for page in pages] == [3, 3, 3, 1]


def test_a_bad_cursor_is_the_first_page(team):
    for value in ["", "x", "2026-01-01_abc", "not-a-date_5", "2026-01-01T00:00:00_5", "_" * 90]:
        assert Cursor.decode(value) is None
    client = team.client_for("operator")
    response = client.get(reverse("run_list", args=["acme"]), {"after": "2026-13-99_5"})
    assert response.status_code == 200
    # A NUL is refused by the input middleware with a clear 400, never a 500.
    response = client.get(reverse("run_list", args=["acme"]), {"after": "2026-13-99_\x00"})
    assert response.status_code == 400


def test_every_run_filter_matches_and_keeps_to_the_tenant(team, other_team):
    now = utc_now()
    mine = RunFactory(
        tenant=team.tenant, requested_by=team.marketer.user, state=RunState.SUCCEEDED,
        vendor_reference="exec-42",
    )  # fmt: skip
    ApprovalFactory(run=mine, decided_by=team.operator.user)
    other = RunFactory(tenant=team.tenant, requested_by=team.operator.user, state=RunState.FAILED)
    old = _runs_at(team.tenant, [now - timedelta(days=40)])[0]
    foreign = RunFactory(tenant=other_team.tenant, vendor_reference="exec-42")

    def ids(**filters):
        return {run.pk for run in selectors.run_list(tenant=team.tenant, filters=filters)}

    assert ids(state=RunState.SUCCEEDED) == {mine.pk}
    assert ids(operation=mine.operation) == {mine.pk, other.pk, old.pk}
    assert ids(connection=mine.connection) == {mine.pk}
    assert ids(connection=foreign.connection) == set()
    assert ids(requester=team.marketer.user) == {mine.pk}
    assert ids(approver=team.operator.user) == {mine.pk}
    assert ids(approver=other_team.operator.user) == set()
    assert ids(vendor_reference="exec-42") == {mine.pk}
    assert ids(vendor_reference=f"#{other.pk}") == {other.pk}
    assert ids(vendor_reference=str(foreign.pk)) == set()
    assert ids(created_from=(now - timedelta(days=1)).date()) == {mine.pk, other.pk}
    assert ids(created_to=(now - timedelta(days=39)).date()) == {old.pk}


def test_run_list_filters_through_the_page_and_refuse_another_tenants_choices(team, other_team):
    RunFactory(tenant=team.tenant, vendor_reference="abc")
    foreign = RunFactory(tenant=other_team.tenant)
    client = team.client_for("auditor")
    url = reverse("run_list", args=["acme"])
    response = client.get(url, {"connection": foreign.connection.pk})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    response = client.get(url, {"requester": other_team.marketer.user.pk})
    assert "Select a valid choice" in response.content.decode()
    response = client.get(url, {"vendor_reference": " abc "})
    assert response.status_code == 200
    assert response.content.decode().count('<tr id="run-') == 1
    assert client.get(url, {"vendor_reference": "abc\x00"}).status_code == 400


def test_run_list_query_count_does_not_grow_with_the_page(team, django_assert_max_num_queries):
    for _ in range(60):
        run = RunFactory(tenant=team.tenant, state=RunState.SUCCEEDED)
        ApprovalFactory(run=run, decided_by=team.operator.user)
    client = team.client_for("operator")
    url = reverse("run_list", args=["acme"])
    # session, user, membership, runs, approvals, estimate, two choice lists, the navigation's
    # approvals-waiting count (+ savepoints)
    with django_assert_max_num_queries(11):
        response = client.get(url)
    cursor = response.context["page"].next_cursor.encode()
    with django_assert_max_num_queries(11):
        client.get(url, {"after": cursor, "state": "succeeded"})
    # The live fragment: fewer still.
    with django_assert_max_num_queries(8):
        client.get(url, HTTP_HX_REQUEST="true")


def test_run_list_reads_the_people_once_for_both_filters_and_keeps_the_selection(team):
    ApprovalFactory(run=RunFactory(tenant=team.tenant), decided_by=team.operator.user)
    client = team.client_for("auditor")
    url = reverse("run_list", args=["acme"])
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, {"approver": team.operator.user.pk})
    # The options (not the check of the submitted approver, a get() with its LIMIT 21): one
    # read for both selects, and no server-side cursor.
    people_lists = [
        q["sql"] for q in queries if 'DISTINCT "auth_user"' in q["sql"] and "LIMIT" not in q["sql"]
    ]
    assert len(people_lists) == 1
    assert not any(q["sql"].startswith("DECLARE") for q in queries)
    html = response.content.decode()
    operator = team.operator.user
    assert html.count(f'<option value="{operator.pk}">{operator.username}</option>') == 1
    assert html.count(f'<option value="{operator.pk}" selected>{operator.username}</option>') == 1
    assert f'<option value="{team.tenant.connections.first().pk}">' in html
    assert response.context["page"].rows[0].decisions[0].username == operator.username


def test_run_list_rows_show_labels_decisions_and_request_time(team):
    run = RunFactory(tenant=team.tenant, state=RunState.SUCCEEDED, approval_required=True)
    ApprovalFactory(run=run, decided_by=team.operator.user)
    Run.objects.filter(pk=run.pk).update(requested_at=None)
    run.refresh_from_db()
    html = team.client_for("auditor").get(reverse("run_list", args=["acme"])).content.decode()
    row = html[html.index(f'<tr id="run-{run.pk}">') :].split("</tr>")[0]
    assert run.get_state_display() in row and run.get_operation_display() in row
    assert f"Approved by {team.operator.user.username}" in row
    assert run.created_at.strftime("%Y-%m-%d %H:%M:%S") in row  # no request time: its creation


def _csv_rows(response):
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


def test_run_export_is_streamed_filtered_escaped_and_audited(team, other_team):
    RunFactory(tenant=team.tenant, state=RunState.FAILED, failure_message='=HYPERLINK("x")')
    RunFactory(tenant=team.tenant, state=RunState.SUCCEEDED, vendor_reference="@SUM(A1)")
    RunFactory(tenant=other_team.tenant, state=RunState.FAILED)
    client = team.client_for("auditor")
    response = client.get(reverse("run_export", args=["acme"]), {"state": "failed"})
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    rows = _csv_rows(response)
    assert rows[0][0] == "run"
    assert len(rows) == 2  # header + the one failed run of this tenant
    message = rows[1][rows[0].index("failure_message")]
    assert message == '\'=HYPERLINK("x")'
    event = AuditEvent.objects.get(action="runs.exported")
    assert event.tenant == team.tenant
    assert event.summary == {"filters": {"state": "failed"}}
    everything = _csv_rows(client.get(reverse("run_export", args=["acme"])))
    assert "'@SUM(A1)" in {row[rows[0].index("vendor_reference")] for row in everything[1:]}


def test_run_export_ends_with_each_runs_outcome_in_the_pages_words(team):
    RunFactory(tenant=team.tenant, state=RunState.FAILED, failure_message="HTTP 422: refused")
    RunFactory(tenant=team.tenant, state=RunState.SUCCEEDED, audience_size=0)
    client = team.client_for("auditor")

    rows = _csv_rows(client.get(reverse("run_export", args=["acme"])))

    assert rows[0][-1] == "outcome" and rows[0][-2] == "parameters"
    assert sorted(row[-1] for row in rows[1:]) == [
        "Failed: HTTP 422: refused",
        "Succeeded: reached nobody (an audience of 0)",
    ]


def test_export_batches_cover_every_row_once(team, monkeypatch):
    from dashboard.tenancy import history

    monkeypatch.setattr(history, "EXPORT_BATCH_SIZE", 3)
    moment = utc_now()
    runs = _runs_at(team.tenant, [moment] * 5 + [moment - timedelta(seconds=1)] * 3)
    lines = list(
        history.stream_csv(
            header=["id"], rows=selectors.run_filter(tenant=team.tenant), fields=["id"],
            batch_size=3,
        )
    )  # fmt: skip
    assert sorted(int(line.strip()) for line in lines[1:]) == sorted(run.pk for run in runs)


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@A1", "\tx", "\rx"])
def test_csv_cells_that_start_a_formula_are_neutralised(value):
    assert csv_safe(value) == "'" + value
    assert csv_safe("plain") == "plain"
    assert csv_safe(None) == ""


def test_audit_list_filters_pages_and_shows_changes(team, other_team):
    for n in range(3):
        AuditEventFactory(tenant=team.tenant, action="run.approved", object_type="run",
                          object_id=str(n), summary={"from": "queued", "to": "sending"})  # fmt: skip
    AuditEventFactory(
        tenant=team.tenant, action="connection.changed", object_type="connection",
        summary={"base_url": {"from": "https://a", "to": "https://b"}},
    )  # fmt: skip
    AuditEventFactory(tenant=other_team.tenant, action="run.approved")
    client = team.client_for("auditor")
    url = reverse("audit_list", args=["acme"])
    body = client.get(url, {"action": "connection.changed"}).content.decode()
    assert "base_url" in body and "https://a → https://b" in body
    assert client.get(url, {"action": "run."}).context["page"].rows.__len__() == 3
    assert len(client.get(url, {"action": "run.approved", "object_id": "1"}).context["page"]) == 1
    # Too long for a filter: shown as an error and ignored; unstorable: a clear 400. Never a 500.
    assert client.get(url, {"actor": "x" * 200, "object_id": "y" * 100}).status_code == 200
    for bad in ("\x00", "a\x00b", "x" * 100_000):
        assert client.get(url, {"actor": bad, "object_id": bad}).status_code == 400
    assert client.get(url + "?actor=%ED%A0%80").status_code in (200, 400)  # invalid UTF-8
    export = _csv_rows(client.get(reverse("audit_export", args=["acme"]), {"action": "run."}))
    assert len(export) == 4
    assert AuditEvent.objects.filter(action="audit.exported", tenant=team.tenant).exists()


def test_audit_list_query_count(team, django_assert_max_num_queries):
    for _ in range(60):
        AuditEventFactory(tenant=team.tenant)
    client = team.client_for("auditor")
    with django_assert_max_num_queries(8):
        response = client.get(reverse("audit_list", args=["acme"]))
    assert response.context["page"].has_next


def test_auditors_can_read_and_export_but_change_nothing(team):
    run = RunFactory(tenant=team.tenant, requested_by=team.marketer.user)
    client = team.client_for("auditor")
    assert client.get(reverse("run_list", args=["acme"])).status_code == 200
    assert client.get(reverse("audit_list", args=["acme"])).status_code == 200
    for name in ("run_approve", "run_reject", "run_cancel", "run_mark_as_sent", "run_send_again"):
        response = client.post(reverse(name, args=["acme", run.pk]), {"comment": "x"})
        assert response.status_code == 403, name
    assert client.post(reverse("run_export", args=["acme"])).status_code == 405
    run.refresh_from_db()
    assert run.state == RunState.AWAITING_APPROVAL


def test_other_tenants_cannot_export(team, other_team):
    client = other_team.client_for("auditor")
    assert client.get(reverse("run_export", args=["acme"])).status_code == 404
    assert client.get(reverse("audit_export", args=["acme"])).status_code == 404
    marketer = team.client_for("marketer")
    assert marketer.get(reverse("audit_export", args=["acme"])).status_code == 403


def test_home_dashboard_shows_this_tenants_work_and_charts_only(
    team, other_team, django_assert_max_num_queries
):
    from django.core.cache import cache

    cache.clear()
    waiting = RunFactory(tenant=team.tenant, requested_by=team.marketer.user)
    own = RunFactory(tenant=team.tenant, requested_by=team.operator.user)
    failed = RunFactory(tenant=team.tenant, state=RunState.FAILED, failure_message="refused")
    running = RunFactory(tenant=team.tenant, state=RunState.ACCEPTED, progress=42)
    RunAttemptFactory(run=failed, failure_class="vendor_rejected", latency_ms=300.0)
    foreign = RunFactory(tenant=other_team.tenant, state=RunState.FAILED)
    RunAttemptFactory(run=foreign, latency_ms=9999.0)
    client = team.client_for("operator")
    with django_assert_max_num_queries(16):
        response = client.get(reverse("tenant_home", args=["acme"]))
    context = response.context
    assert [run.pk for run in context["waiting_for_me"]] == [waiting.pk]  # not their own
    assert own.pk not in [run.pk for run in context["waiting_for_me"]]
    assert [run.pk for run in context["in_progress"]] == [running.pk]
    assert [run.pk for run in context["failures"]] == [failed.pk]
    body = response.content.decode()
    assert '<svg class="chart"' in body and "<script" not in body.split("<main", 1)[-1]
    assert "9999 ms" not in body  # the other tenant's vendor latency
    assert "300 ms" in body
    marketer = team.client_for("marketer").get(reverse("tenant_home", args=["acme"]))
    assert marketer.context["waiting_for_me"] == []
