"""What the Altcraft import operation stores of a task's result: a count only where Altcraft
gave one."""

from __future__ import annotations

from campaigns.vendors.altcraft.client import ProfileIds, TaskStatus
from campaigns.vendors.altcraft.operation import _task_result


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
