"""connection_test: admins only, audited with its result, never a secret, never a trigger."""

import pytest
from django.core.exceptions import PermissionDenied

from dashboard.audit.trail import Actor
from dashboard.models import AuditEvent, VendorKind
from dashboard.tenancy import services

pytestmark = pytest.mark.django_db


def test_an_admin_tests_a_connection_and_the_audit_row_records_the_result(
    team, sandbox_connection, sandboxes
):
    connection = sandbox_connection(team.tenant, VendorKind.OPTIMOVE_CAMPAIGNS)

    result = services.connection_test(actor=Actor(user=team.admin.user), connection=connection)

    assert result.ok, result.checked
    event = AuditEvent.objects.get(action="connection.tested")
    assert event.tenant == team.tenant
    assert event.object_id == str(connection.pk)
    assert event.summary == {
        "connection": connection.name,
        "result": "ok",
        "checked": result.checked,
    }
    assert "sandbox-optimove" not in str(event.summary)
    assert sandboxes[VendorKind.OPTIMOVE_CAMPAIGNS].received_on("run") == []


@pytest.mark.parametrize("role", ["marketer", "operator", "auditor"])
def test_only_admins_may_test_a_connection(team, sandbox_connection, sandboxes, role):
    connection = sandbox_connection(team.tenant, VendorKind.TALKIFAI)

    with pytest.raises(PermissionDenied):
        services.connection_test(actor=Actor(user=getattr(team, role).user), connection=connection)

    assert sandboxes[VendorKind.TALKIFAI].received == []
    assert not AuditEvent.objects.filter(action="connection.tested").exists()


def test_an_admin_of_another_tenant_may_not(team, other_team, sandbox_connection, sandboxes):
    connection = sandbox_connection(team.tenant, VendorKind.TALKIFAI)

    with pytest.raises(PermissionDenied):
        services.connection_test(actor=Actor(user=other_team.admin.user), connection=connection)

    assert sandboxes[VendorKind.TALKIFAI].received == []


def test_a_failed_test_is_audited_as_failed(team, sandbox_connection):
    connection = sandbox_connection(team.tenant, VendorKind.ALTCRAFT, base_url="http://127.0.0.1:1")

    result = services.connection_test(actor=Actor(user=team.admin.user), connection=connection)

    assert not result.ok
    event = AuditEvent.objects.get(action="connection.tested")
    assert event.summary["result"] == "failed"
    assert event.summary["checked"] == result.checked
