"""What the Altcraft import operation stores of a task's result: a count only where Altcraft
gave one; the connection test against the sandbox over HTTP (a task-status read only)."""

from __future__ import annotations

import pytest

from campaigns.vendors.altcraft.client import ProfileIds, TaskStatus
from campaigns.vendors.altcraft.operation import _task_result
from dashboard.models import VendorKind
from dashboard.runs.models import Operation
from dashboard.runs.operations import connection_check_for, operation_for
from dashboard.tenancy.credentials import connection_secrets


def status(result: dict | None, profile_ids: list[str]) -> TaskStatus:
    return TaskStatus(
        task_id="task-1",
        status="completed",
        progress=100,
        is_terminal=True,
        profile_ids=ProfileIds(profile_ids),
        result_error=None,
        result_error_text="",
        result=result,
        exchange=None,  # type: ignore[arg-type]
    )


def test_the_json_shape_counts_the_profiles_it_lists() -> None:
    result = {"error": 0, "error_text": "", "result": [{"profile_id": "a"}, {"profile_id": "b"}]}

    assert _task_result(status(result, ["a", "b"])) == {"profile_count": 2}


def test_the_xml_shape_lists_no_profiles_and_is_not_counted_as_zero() -> None:
    result = {"captured": 0, "errors": [], "status": "ok"}

    assert _task_result(status(result, [])) == {
        "profile_count": None,
        "captured": 0,
        "error_count": 0,
    }


def check(connection):
    return connection_check_for(connection.kind).check_connection(
        connection, connection_secrets(connection)
    )


def launches(sandbox) -> list:
    return sandbox.received_on("start_batch") + sandbox.received_on("import_and_start_batch_task")


@pytest.mark.django_db
def test_a_good_token_passes_with_a_task_status_read_and_nothing_is_launched(
    team, sandbox_connection, sandboxes
):
    connection = sandbox_connection(team.tenant, VendorKind.ALTCRAFT)

    result = check(connection)

    assert result.ok, result.checked
    assert "read a task's status" in result.checked and "token accepted" in result.checked
    sandbox = sandboxes[VendorKind.ALTCRAFT]
    assert len(sandbox.received_on("task_status")) == 1
    assert launches(sandbox) == []


@pytest.mark.django_db
def test_both_altcraft_operations_test_a_connection_the_same_way(team, sandbox_connection):
    connection = sandbox_connection(team.tenant, VendorKind.ALTCRAFT)
    secrets = connection_secrets(connection)

    for name in (Operation.ALTCRAFT_START_BATCH, Operation.ALTCRAFT_IMPORT_AND_START):
        assert operation_for(name).check_connection(connection, secrets).ok


@pytest.mark.django_db
def test_a_bad_token_fails_with_the_vendors_words(team, sandbox_connection, sandboxes):
    connection = sandbox_connection(
        team.tenant, VendorKind.ALTCRAFT, secret_values={"token": "wrong-token-1234"}
    )

    result = check(connection)

    assert not result.ok
    assert "error 401: Invalid token" in result.checked
    assert "wrong-token-1234" not in result.checked
    assert launches(sandboxes[VendorKind.ALTCRAFT]) == []


@pytest.mark.django_db
def test_an_unreachable_host_fails(team, sandbox_connection):
    connection = sandbox_connection(team.tenant, VendorKind.ALTCRAFT, base_url="http://127.0.0.1:1")

    result = check(connection)

    assert not result.ok
    assert "never left this machine" in result.checked
