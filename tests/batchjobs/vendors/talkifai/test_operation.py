"""The TalkifAI operation's connection test against the sandbox over HTTP: a job read only."""

import pytest

from dashboard.models import VendorKind
from dashboard.runs.operations import connection_check_for
from dashboard.tenancy.credentials import connection_secrets

pytestmark = pytest.mark.django_db


def check(connection):
    return connection_check_for(connection.kind).check_connection(
        connection, connection_secrets(connection)
    )


def test_a_good_key_passes_with_a_job_read_and_nothing_is_started(
    team, sandbox_connection, sandboxes
):
    connection = sandbox_connection(team.tenant, VendorKind.TALKIFAI)

    result = check(connection)

    assert result.ok, result.checked
    assert "read a batch job" in result.checked and "API key accepted" in result.checked
    sandbox = sandboxes[VendorKind.TALKIFAI]
    assert len(sandbox.received_on("batch_job_detail")) == 1
    assert sandbox.received_on("start_batch_job") == []


def test_a_bad_key_fails_with_the_vendors_words(team, sandbox_connection, sandboxes):
    connection = sandbox_connection(
        team.tenant, VendorKind.TALKIFAI, secret_values={"api_key": "wrong-key-1234"}
    )

    result = check(connection)

    assert not result.ok
    assert "401" in result.checked
    assert "wrong-key-1234" not in result.checked
    assert sandboxes[VendorKind.TALKIFAI].received_on("start_batch_job") == []


def test_an_unreachable_host_fails(team, sandbox_connection):
    connection = sandbox_connection(
        team.tenant, VendorKind.TALKIFAI, base_url="http://127.0.0.1:1/api"
    )

    result = check(connection)

    assert not result.ok
    assert "never left this machine" in result.checked
