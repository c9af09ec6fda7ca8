"""The tenancy selectors that feed the audit page's filters."""

import pytest
from django.urls import reverse

from dashboard.tenancy.selectors import audit_action_choices
from tests.factories import AuditEventFactory

pytestmark = pytest.mark.django_db


def test_the_action_filter_offers_the_tenants_actions_and_their_prefixes(team, other_team):
    for action in ("run.approved", "run.requested", "run.approved", "member.invited"):
        AuditEventFactory(tenant=team.tenant, action=action)
    AuditEventFactory(tenant=other_team.tenant, action="connection.secret_replaced")

    assert audit_action_choices(tenant=team.tenant) == [
        "member.",
        "member.invited",
        "run.",
        "run.approved",
        "run.requested",
    ]


def test_a_tenant_with_no_trail_is_offered_nothing(team):
    assert audit_action_choices(tenant=team.tenant) == []


def test_the_audit_page_offers_the_actions_as_a_list_to_pick_from(team, other_team):
    AuditEventFactory(tenant=team.tenant, action="run.approved")
    AuditEventFactory(tenant=other_team.tenant, action="connection.secret_replaced")
    page = team.client_for("auditor").get(reverse("audit_list", args=["acme"])).content.decode()
    assert 'list="audit-actions"' in page
    assert '<option value="run.approved"></option>' in page
    assert '<option value="run.">every run.… action</option>' in page
    assert "connection.secret_replaced" not in page  # another tenant's trail
