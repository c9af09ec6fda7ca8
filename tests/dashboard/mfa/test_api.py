"""The second-factor setting through the API, and approvals by API token: no step-up."""

from __future__ import annotations

import pytest

from dashboard.models import AuditEvent
from dashboard.runs.states import RunState
from tests.dashboard.mfa.conftest import add_app
from tests.factories import RunFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]


def test_an_admin_token_sets_the_requirement_and_an_operator_token_may_not(team, make_token):
    _, admin = make_token("admin")
    _, operator = make_token("operator")
    assert admin.get("second-factor").json() == {"required": False}

    refused = operator.post("second-factor", {"required": True})
    assert refused.status_code == 403
    bad = admin.post("second-factor", {"required": "yes"})
    assert bad.status_code == 422
    team.tenant.refresh_from_db()
    assert not team.tenant.require_second_factor

    assert admin.post("second-factor", {"required": True}).json() == {"required": True}
    team.tenant.refresh_from_db()
    assert team.tenant.require_second_factor
    event = AuditEvent.objects.get(action="tenant.settings_changed")
    assert event.summary == {"require_second_factor": {"from": False, "to": True}}


def test_an_approval_by_api_token_needs_no_step_up(team, make_token):
    add_app(team.operator.user)
    team.tenant.require_second_factor = True
    team.tenant.save()
    run = RunFactory(
        tenant=team.tenant, state=RunState.AWAITING_APPROVAL, requested_by=team.marketer.user
    )
    _, operator = make_token("operator")
    response = operator.post(f"runs/{run.pk}/approve", {"parameters_hash": run.parameters_hash})
    assert response.status_code == 200, response.content
    run.refresh_from_db()
    assert run.state == RunState.QUEUED
    assert not AuditEvent.objects.filter(action__startswith="mfa.").exists()
