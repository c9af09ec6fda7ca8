"""The TriggerDaily operation's connection test: DNS + TCP (+ TLS) only, never a request, since
the vendor's one endpoint starts the batch."""

import pytest

from dashboard.models import VendorKind
from dashboard.runs.operations import connection_check_for
from dashboard.tenancy.credentials import connection_secrets

pytestmark = pytest.mark.django_db


def check(connection):
    return connection_check_for(connection.kind).check_connection(
        connection, connection_secrets(connection)
    )


def test_a_reachable_host_passes_without_a_request_and_says_the_key_is_unchecked(
    team, sandbox_connection, sandboxes
):
    connection = sandbox_connection(
        team.tenant, VendorKind.OPTIMOVE_BATCH, options={"key_role": "ApiRole"}
    )

    result = check(connection)

    assert result.ok, result.checked
    assert "Reached 127.0.0.1" in result.checked
    assert "TriggerDaily has no read-only call" in result.checked
    assert "not checked" in result.checked
    sandbox = sandboxes[VendorKind.OPTIMOVE_BATCH]
    assert sandbox.received == []
    assert all(task["successful_triggers"] == 0 for task in sandbox.state()["tenants"].values())


def test_an_unreachable_host_fails(team, sandbox_connection):
    connection = sandbox_connection(
        team.tenant,
        VendorKind.OPTIMOVE_BATCH,
        options={"key_role": "ApiRole"},
        base_url="http://127.0.0.1:1",
    )

    result = check(connection)

    assert not result.ok
    assert "Could not open a connection to 127.0.0.1:1" in result.checked


def test_a_host_the_destination_rule_forbids_is_not_tried(team, settings):
    from tests.factories import VendorConnectionFactory

    connection = VendorConnectionFactory(
        tenant=team.tenant, kind=VendorKind.OPTIMOVE_BATCH, base_url="https://10.1.2.3"
    )

    result = check(connection)

    assert not result.ok
    assert result.checked.startswith("Not tried:")
    assert "not a public internet address" in result.checked


def test_an_unresolvable_host_fails_on_dns(team):
    from tests.factories import VendorConnectionFactory

    connection = VendorConnectionFactory(
        tenant=team.tenant, kind=VendorKind.OPTIMOVE_BATCH, base_url="https://nowhere.invalid"
    )

    result = check(connection)

    assert not result.ok
    assert "could not be resolved" in result.checked
