"""A vendor's answer as rows a person reads: labels from its keys, numbers with separators."""

import pytest
from django.urls import reverse

from dashboard.runs.result_fields import ResultField, humanize_key, result_fields
from dashboard.runs.states import RunState
from tests.factories import RunFactory


@pytest.mark.parametrize(
    ("key", "label"),
    [
        ("contacts_enqueued", "Contacts enqueued"),
        ("contactsEnqueued", "Contacts enqueued"),
        ("batch_job_id", "Batch job ID"),
        ("id", "ID"),
        ("scheduled-start-cancelled", "Scheduled start cancelled"),
    ],
)
def test_keys_read_as_words(key, label):
    assert humanize_key(key) == label


def test_talkifai_answer_becomes_rows():
    rows = result_fields(
        {
            "contacts_enqueued": 220734,
            "scheduled_start_cancelled": True,
            "started_at": "2026-12-06T10:00:00Z",
            "message": "Batch job started",
            "warnings": [],
            "vendor": {"status": "running", "jobId": "bj-1"},
        }
    )
    assert rows == [
        ResultField("Contacts enqueued", "220,734"),
        ResultField("Scheduled start cancelled", "yes"),
        ResultField("Started at", "2026-12-06T10:00:00Z"),
        ResultField("Message", "Batch job started"),
        ResultField("Warnings", "none"),
        ResultField("Vendor · Status", "running"),
        ResultField("Vendor · Job ID", "bj-1"),
    ]


def test_deep_and_long_values_stay_one_row_each():
    rows = result_fields({"a": {"b": {"c": 1, "d": [1, 2]}}, "ids": list(range(12))})
    assert rows == [
        ResultField("A · B", "C: 1; D: 1, 2"),
        ResultField("IDs", "0, 1, 2, 3, 4, 5, 6, 7, 8, 9 … and 2 more"),
    ]


def test_an_answer_that_is_not_an_object_is_one_row():
    assert result_fields(["x", "y"]) == [ResultField("Answer", "x, y")]
    assert result_fields({}) == []


@pytest.mark.django_db
def test_the_run_page_shows_the_answer_as_a_table_with_the_exact_json_folded(team):
    run = RunFactory(
        tenant=team.tenant,
        state=RunState.SUCCEEDED,
        audience_size=220734,
        result={"contacts_enqueued": 220734, "message": "Batch job started"},
    )
    page = team.client_for("auditor").get(reverse("run_detail", args=["acme", run.pk])).content
    page = page.decode()
    assert '<th scope="row">Contacts enqueued</th><td>220,734</td>' in page
    assert '<th scope="row">Message</th><td>Batch job started</td>' in page
    assert "<summary>Exact answer (JSON)</summary>" in page
    assert "<dt>Audience size</dt><dd>220,734</dd>" in page
