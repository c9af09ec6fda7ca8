"""The Optimove campaigns operation's connection test against the sandbox over HTTP: an
execution-status read only, never a run."""

import pytest

from dashboard.models import VendorKind
from dashboard.runs.operations import connection_check_for
from dashboard.tenancy.credentials import connection_secrets

pytestmark = pytest.mark.django_db


def check(connection):
    return connection_check_for(connection.kind).check_connection(
        connection, connection_secrets(connection)
    )


def test_good_keys_pass_with_a_status_read_and_nothing_is_run(team, sandbox_connection, sandboxes):
    connection = sandbox_connection(team.tenant, VendorKind.OPTIMOVE_CAMPAIGNS)

    result = check(connection)

    assert result.ok, result.checked
    assert "API key and brand key accepted" in result.checked
    sandbox = sandboxes[VendorKind.OPTIMOVE_CAMPAIGNS]
    assert len(sandbox.received_on("status")) == 1
    assert sandbox.received_on("run") == []


@pytest.mark.parametrize(
    ("secret_values", "status"),
    [
        ({"api_key": "wrong-api-key-1234", "brand_key": "sandbox-optimove-brand-key"}, "401"),
        ({"api_key": "sandbox-optimove-api-key", "brand_key": "wrong-brand-key-1234"}, "403"),
    ],
)
def test_a_bad_key_fails_with_the_vendors_words(
    team, sandbox_connection, sandboxes, secret_values, status
):
    connection = sandbox_connection(
        team.tenant, VendorKind.OPTIMOVE_CAMPAIGNS, secret_values=secret_values
    )

    result = check(connection)

    assert not result.ok
    assert f"Optimove answered {status}" in result.checked
    assert "wrong-" not in result.checked
    assert sandboxes[VendorKind.OPTIMOVE_CAMPAIGNS].received_on("run") == []


def test_an_unreachable_host_fails(team, sandbox_connection):
    connection = sandbox_connection(
        team.tenant, VendorKind.OPTIMOVE_CAMPAIGNS, base_url="http://127.0.0.1:1"
    )

    result = check(connection)

    assert not result.ok
    assert "never left this machine" in result.checked
