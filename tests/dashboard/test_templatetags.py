"""The audit page's "What changed" (issue 9, item 17): field: old → new, never a Python dict."""

from __future__ import annotations

import pytest
from django.urls import reverse

from dashboard.templatetags.triggerdesk import audit_changes
from tests.factories import AuditEventFactory


def test_a_diff_of_fields_reads_field_old_to_new():
    lines = audit_changes({"approval_required": {"from": True, "to": False}})
    assert lines == [
        {"field": "approval required", "old": "yes", "new": "no", "value": "", "is_change": True}
    ]


def test_a_state_change_and_its_reason():
    lines = audit_changes({"from": "awaiting_approval", "to": "cancelled", "reason": "late"})
    assert [(x["field"], x["old"], x["new"], x["value"]) for x in lines] == [
        ("", "awaiting_approval", "cancelled", ""),
        ("reason", "", "", "late"),
    ]


def test_plain_facts_and_nested_values_are_plain_text():
    lines = audit_changes({"user": "mia", "options": {}, "parameters": {"a": 1}, "n": None})
    assert [(x["field"], x["value"]) for x in lines] == [
        ("user", "mia"),
        ("options", "—"),
        ("parameters", '{"a": 1}'),
        ("n", "—"),
    ]


def test_long_values_are_cut():
    (line,) = audit_changes({"comment": "x" * 1000})
    assert len(line["value"]) <= 301


@pytest.mark.django_db
def test_the_audit_page_shows_changes_not_dicts(team):
    AuditEventFactory(
        tenant=team.tenant,
        action="tenant.settings_changed",
        summary={"approval_valid_minutes": {"from": 120, "to": 60}},
    )
    response = team.client_for("auditor").get(reverse("audit_list", args=["acme"]))
    page = response.content.decode()
    assert "approval valid minutes:" in page
    assert '<span class="old">120</span> → <strong>60</strong>' in page
    assert "{&#x27;from&#x27;" not in page and "{'from'" not in page
