"""Contract tests: the Altcraft client against its sandbox, over real HTTP."""

from __future__ import annotations

import json
import logging
import re
import socket
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from campaigns.vendors.altcraft.client import (
    DEFAULT_BODY_LIMIT_BYTES,
    AltcraftClient,
    AltcraftNotSent,
    AltcraftRejected,
    AltcraftServerError,
    AltcraftThrottled,
    BatchLaunchResult,
    BodyTooLarge,
    ImportTaskAccepted,
    NoAnswer,
    StatusNoAnswer,
    TaskStatus,
    UnreadableLaunchAnswer,
    UnreadableStatusAnswer,
    VendorBodyLimitExceeded,
    split_items_to_fit,
)
from campaigns.vendors.altcraft.sandbox import (
    DEFAULT_TOKEN,
    INACTIVE_TRIGGER_ID,
    AltcraftSandbox,
)
from dashboard.vendors.http import (
    REDACTED,
    ConfigurationError,
    Exchange,
    FailureClass,
    NotSent,
    OutcomeUnknown,
    Rejected,
    ServerError,
    Throttled,
    VendorError,
    minified_json,
)
from dashboard.vendors.sandbox import (
    Fault,
    Sandbox,
    SandboxClock,
    SandboxRequest,
    SandboxResponse,
    SandboxServer,
    route,
)

PREFIX = "/acme/altcraft"
START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SECRET_TOKEN = "s3cr3t-altcraft-token-9f2c41"
START_BATCH_PATH = "/api/v1.1/campaigns/triggers/start_batch"
IMPORT_PATH = "/api/v1.1/campaigns/triggers/import_and_start_batch_task"
STATUS_PATH = "/api/v1.1/tasks/status"
EXAMPLE1_ID = "6606e08f10bcdd88297057a7"  # the docs' ids, seeded in the sandbox
EXAMPLE2_ID = "66101437dc4594c2934da6da"
OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

# The docs' import example (matching by email), item for item.
DOC_IMPORT_ITEMS: list[dict[str, Any]] = [
    {
        "data": {
            "_fname": "Victoria",
            "_lname": " Beckham",
            "email": "example1@example.com",
            "phones": "+79000000000",
            "subscriptions": [
                {"channel": "email", "email": "example2@example.com", "resource_id": 21},
                {"channel": "phone", "phone": "+79000005478", "resource_id": 20},
            ],
        }
    },
    {
        "data": {
            "_fname": "David",
            "_lname": " Beckham",
            "email": "example3@example.com",
            "phones": "+79000000001",
            "subscriptions": [
                {"channel": "email", "email": "example14@example.com", "resource_id": 21},
                {"channel": "phone", "phone": "+79000000000", "resource_id": 20},
            ],
        }
    },
]


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[AltcraftSandbox, SandboxServer]]:
    sandbox = AltcraftSandbox(SandboxClock(START, scale=0))
    with SandboxServer({PREFIX: sandbox}) as server:
        yield sandbox, server


@pytest.fixture
def sandbox(served: tuple[AltcraftSandbox, SandboxServer]) -> AltcraftSandbox:
    sandbox, _ = served
    sandbox.reset()
    sandbox.clock.set(START)
    sandbox.clock.set_scale(0)
    sandbox.control("add_token", {"token": SECRET_TOKEN, "account": "demo"})
    return sandbox


@pytest.fixture
def base_url(served: tuple[AltcraftSandbox, SandboxServer]) -> str:
    return served[1].url(PREFIX)


@pytest.fixture
def client(sandbox: AltcraftSandbox, base_url: str) -> Iterator[AltcraftClient]:
    client = AltcraftClient(base_url, token=SECRET_TOKEN)
    yield client
    client.close()


class ScriptedVendor(Sandbox):
    """Answers every Altcraft route with whatever the test scripts: garbled, odd or hostile."""

    name = "scripted-altcraft"

    def __init__(self) -> None:
        super().__init__()
        self.answer = SandboxResponse.json(200, {})

    @route("POST", r"/api/v1\.1/.+", "any")
    def any_route(self, request: SandboxRequest) -> SandboxResponse:
        return self.answer


@pytest.fixture(scope="module")
def scripted_served() -> Iterator[tuple[ScriptedVendor, SandboxServer]]:
    vendor = ScriptedVendor()
    with SandboxServer({"/scripted": vendor}) as server:
        yield vendor, server


@pytest.fixture
def scripted(
    scripted_served: tuple[ScriptedVendor, SandboxServer],
) -> Iterator[tuple[ScriptedVendor, AltcraftClient]]:
    vendor, server = scripted_served
    vendor.reset()
    client = AltcraftClient(server.url("/scripted"), token=SECRET_TOKEN)
    yield vendor, client
    client.close()


# -- helpers ---------------------------------------------------------------------------------


def assert_no_secret(caplog: pytest.LogCaptureFixture, *things: Any) -> None:
    """The token appears in no exchange, error or log record."""
    for thing in things:
        if isinstance(thing, Exchange):
            assert SECRET_TOKEN not in json.dumps(thing.as_dict())
        elif isinstance(thing, BaseException):
            assert SECRET_TOKEN not in str(thing)
            assert SECRET_TOKEN not in repr(thing)
            if isinstance(thing, VendorError):
                assert SECRET_TOKEN not in thing.vendor_message
                if thing.exchange is not None:
                    assert SECRET_TOKEN not in json.dumps(thing.exchange.as_dict())
        else:
            assert SECRET_TOKEN not in json.dumps(thing, default=str)
    for record in caplog.records:
        assert SECRET_TOKEN not in record.getMessage()


def expected_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- start_batch: success ----------------------------------------------------------------------


def test_start_batch_by_email_sends_the_documented_body_and_returns_profile_ids(
    sandbox: AltcraftSandbox,
    client: AltcraftClient,
    base_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    result = client.start_batch(
        trigger_id=8,
        data=[{"email": "example1@example.com"}, {"email": "example2@example.com"}],
    )

    assert isinstance(result, BatchLaunchResult)
    assert result.profile_ids == [EXAMPLE1_ID, EXAMPLE2_ID]
    assert result.error_text == "Successful operation"
    assert result.exchange.status_code == 200
    assert result.exchange.url == base_url + START_BATCH_PATH
    assert result.exchange.url.startswith("http://127.0.0.1:")
    assert PREFIX in result.exchange.url
    # The recorded body carries a placeholder where the token was.
    assert json.loads(result.exchange.request_body)["token"] == REDACTED

    [received] = sandbox.received_on("start_batch")
    assert received.method == "POST"
    assert received.path == START_BATCH_PATH
    assert received.headers["content-type"] == "application/json"
    assert received.body.encode() == expected_body(
        {
            "token": SECRET_TOKEN,
            "format": "json",
            "trigger_id": 8,
            "matching": "email",
            "data": [{"email": "example1@example.com"}, {"email": "example2@example.com"}],
        }
    )
    state = sandbox.state()
    assert state["launch_count"] == 1
    [launch] = state["launches"]
    assert launch["trigger_id"] == 8
    assert launch["profile_ids"] == [EXAMPLE1_ID, EXAMPLE2_ID]
    assert launch["source"] == "start_batch"
    assert_no_secret(caplog, result.exchange)


def test_start_batch_by_custom_field_follows_the_docs_example(
    sandbox: AltcraftSandbox, client: AltcraftClient
) -> None:
    result = client.start_batch(
        trigger_id=96,
        matching="custom",
        field_name="Custom_ID",
        skip_triggers=False,
        data=[{"field_value": "003"}, {"field_value": "002"}],
    )

    assert result.profile_ids == [EXAMPLE1_ID, EXAMPLE2_ID]
    [received] = sandbox.received_on("start_batch")
    assert received.body.encode() == expected_body(
        {
            "token": SECRET_TOKEN,
            "format": "json",
            "trigger_id": 96,
            "matching": "custom",
            "field_name": "Custom_ID",
            "data": [{"field_value": "003"}, {"field_value": "002"}],
            "skip_triggers": False,
        }
    )
    assert sandbox.state()["launches"][0]["skip_triggers"] is False


@pytest.mark.parametrize(
    ("matching", "data", "expected"),
    [
        ("email_profile", [{"email": "EXAMPLE2@example.com"}], [EXAMPLE2_ID]),
        ("phone", [{"phone": "+7 900 000-00-01"}], [EXAMPLE2_ID]),
        ("profile_id", [{"profile_id": EXAMPLE1_ID}], [EXAMPLE1_ID]),
        ("custom", [{"field_value": "002"}, {"field_value": "002"}], [EXAMPLE2_ID]),
    ],
)
def test_start_batch_matching_modes(
    sandbox: AltcraftSandbox,
    client: AltcraftClient,
    matching: str,
    data: list[dict[str, Any]],
    expected: list[str],
) -> None:
    field_name = "Custom_ID" if matching == "custom" else None
    result = client.start_batch(trigger_id=1, matching=matching, field_name=field_name, data=data)

    assert result.profile_ids == expected
    assert json.loads(sandbox.received_on("start_batch")[0].body)["matching"] == matching
    assert sandbox.state()["launched_profile_count"] == len(expected)


def test_start_batch_skips_profiles_it_cannot_find(
    sandbox: AltcraftSandbox, client: AltcraftClient
) -> None:
    partly = client.start_batch(
        trigger_id=1, data=[{"email": "nobody@example.com"}, {"email": "example2@example.com"}]
    )
    nobody = client.start_batch(trigger_id=1, data=[{"email": "nobody@example.com"}])

    assert partly.profile_ids == [EXAMPLE2_ID]
    assert nobody.profile_ids == []
    assert nobody.error_text == "Successful operation"
    assert sandbox.state()["launch_count"] == 1  # a launch reaching nobody is no launch
    assert [r.effect["unmatched"] for r in sandbox.received_on("start_batch")] == [1, 1]


def test_start_batch_passes_content_custom_data_and_attachments(
    sandbox: AltcraftSandbox, client: AltcraftClient
) -> None:
    client.start_batch(
        trigger_id=8,
        data=[{"email": "example1@example.com"}],
        content={"page": "registration_form", "city": "Zürich"},
        custom_data={"crm_case": 17},
        attach=[{"data": "data:text/csv;base64,5LuK5pel44GvCg==", "name": "Attach.txt"}],
    )

    received = sandbox.received_on("start_batch")[0]
    # Minified UTF-8, non-ASCII kept as is: the exact bytes the vendor receives.
    assert '"content":{"page":"registration_form","city":"Zürich"}' in received.body
    assert received.body.endswith(
        '"custom_data":{"crm_case":17},'
        '"attach":[{"data":"data:text/csv;base64,5LuK5pel44GvCg==","name":"Attach.txt"}]}'
    )
    [launch] = sandbox.state()["launches"]
    assert launch["content"] == {"page": "registration_form", "city": "Zürich"}
    assert launch["custom_data"] == {"crm_case": 17}
    assert launch["attach_count"] == 1


def test_client_works_against_a_sandbox_mounted_at_the_root() -> None:
    sandbox = AltcraftSandbox(SandboxClock(START, scale=0))
    with SandboxServer(sandbox) as server:
        client = AltcraftClient(server.url() + "/", token=DEFAULT_TOKEN)
        result = client.start_batch(trigger_id=1, data=[{"email": "example1@example.com"}])
        client.close()
    assert result.exchange.url == server.url() + START_BATCH_PATH
    assert sandbox.received_on("start_batch")[0].path == START_BATCH_PATH


# -- import + trigger task and its status ----------------------------------------------------


def test_import_task_sends_the_documented_body_and_is_polled_to_completion(
    sandbox: AltcraftSandbox, client: AltcraftClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    accepted = client.import_and_start_batch_task(
        trigger_id=96,
        data=DOC_IMPORT_ITEMS,
        timeout={"days": 0, "hours": 0, "minutes": 5},
        content={"page": "registration_form"},
        attach=[{"data": "data:text/csv;base64,5LuK5pel44GvCg==", "name": "Attach.txt"}],
    )

    assert isinstance(accepted, ImportTaskAccepted)
    assert UUID.match(accepted.task_id)
    assert accepted.error_text == "Successful operation"
    [received] = sandbox.received_on("import_and_start_batch_task")
    assert received.path == IMPORT_PATH
    assert received.body.encode() == expected_body(
        {
            "token": SECRET_TOKEN,
            "format": "json",
            "trigger_id": 96,
            "matching": "email",
            "data": DOC_IMPORT_ITEMS,
            "timeout": {"days": 0, "hours": 0, "minutes": 5},
            "content": {"page": "registration_form"},
            "attach": [{"data": "data:text/csv;base64,5LuK5pel44GvCg==", "name": "Attach.txt"}],
        }
    )
    assert '"_lname":" Beckham"' in received.body  # the docs' leading space survives

    pending = client.task_status(accepted.task_id)
    assert isinstance(pending, TaskStatus)
    assert (pending.status, pending.progress, pending.is_terminal) == ("pending", 0, False)
    assert pending.profile_ids == [] and pending.result is None
    assert sandbox.state()["launch_count"] == 0  # nothing is sent before the task finishes

    sandbox.clock.advance(2.5)
    halfway = client.task_status(accepted.task_id)
    assert (halfway.status, halfway.progress, halfway.is_terminal) == ("processing", 50, False)

    sandbox.clock.advance(2.5)
    done = client.task_status(accepted.task_id)
    assert (done.status, done.progress, done.is_terminal) == ("completed", 100, True)
    assert done.failed is False
    assert done.result_error == 0 and done.result_error_text == ""
    assert done.profile_ids[0] == EXAMPLE1_ID  # example1@example.com existed: updated
    assert OBJECT_ID.match(done.profile_ids[1])  # example3@example.com is new
    [received_status] = sandbox.received_on("task_status")[-1:]
    assert received_status.path == STATUS_PATH
    assert received_status.body.encode() == expected_body(
        {"token": SECRET_TOKEN, "task_id": accepted.task_id}
    )

    state = sandbox.state()
    assert state["launch_count"] == 1
    assert state["launches"][0]["task_id"] == accepted.task_id
    assert state["launches"][0]["profile_ids"] == done.profile_ids
    assert (state["profiles_updated"], state["profiles_created"]) == (1, 1)
    assert state["imported_profiles"] == 2
    assert_no_secret(caplog, accepted.exchange, pending.exchange, done.exchange)


def test_import_task_by_custom_field_follows_the_docs_example(
    sandbox: AltcraftSandbox, client: AltcraftClient
) -> None:
    items = [
        {"data": {"_fname": "Tom", "email": "example@example.com", "Custom_id": "0002"}},
        {"data": {"_fname": "Lili", "email": "example@example.com", "Custom_id": "0001"}},
    ]
    accepted = client.import_and_start_batch_task(
        trigger_id=96,
        matching="custom",
        field_name="Custom_id",
        skip_triggers=False,
        detect_geo=True,
        data=items,
    )
    sandbox.clock.advance(5)
    done = client.task_status(accepted.task_id)

    body = json.loads(sandbox.received_on("import_and_start_batch_task")[0].body)
    assert [body[key] for key in ("matching", "field_name", "skip_triggers", "detect_geo")] == [
        "custom",
        "Custom_id",
        False,
        True,
    ]
    # Two profiles share an email but differ on the matching field: both are created.
    assert len(done.profile_ids) == 2
    assert sandbox.state()["profiles_created"] == 2


def test_a_failed_task_reports_its_error_and_launches_nothing(
    sandbox: AltcraftSandbox, client: AltcraftClient
) -> None:
    accepted = client.import_and_start_batch_task(trigger_id=1, data=DOC_IMPORT_ITEMS)
    sandbox.clock.advance(1)
    sandbox.control("fail_task", {"task_id": accepted.task_id, "error_text": "Import failed"})
    sandbox.clock.advance(10)

    status = client.task_status(accepted.task_id)

    assert (status.status, status.progress, status.is_terminal) == ("failed", 20, True)
    assert status.failed is True
    assert (status.result_error, status.result_error_text) == (500, "Import failed")
    assert status.profile_ids == []
    assert sandbox.state()["launch_count"] == 0
    assert sandbox.state()["imported_profiles"] == 0


def test_a_task_that_outlasts_its_timeout_fails(
    sandbox: AltcraftSandbox, client: AltcraftClient
) -> None:
    sandbox.control("set_task_duration", {"seconds": 600})
    accepted = client.import_and_start_batch_task(
        trigger_id=1, data=DOC_IMPORT_ITEMS, timeout={"minutes": 5}
    )
    sandbox.clock.advance(299)
    assert client.task_status(accepted.task_id).status == "processing"
    sandbox.clock.advance(1)

    status = client.task_status(accepted.task_id)

    assert (status.status, status.progress) == ("failed", 50)
    assert (status.result_error, status.result_error_text) == (408, "Task timeout exceeded")
    assert sandbox.state()["launch_count"] == 0


def test_status_of_an_unknown_task_is_rejected(client: AltcraftClient) -> None:
    # The docs' own example id is not a UUID: the client does not insist on one.
    with pytest.raises(AltcraftRejected) as caught:
        client.task_status("task_b2f9fk6a-2479-4a63-b592-f15d4e3b69c5")

    assert caught.value.code == "altcraft_error_404"
    assert caught.value.vendor_message == "Task not found"
    assert caught.value.status_code == 200
    assert caught.value.failure_class is FailureClass.REJECTED


def test_a_task_is_invisible_to_another_account(
    sandbox: AltcraftSandbox, client: AltcraftClient, base_url: str
) -> None:
    accepted = client.import_and_start_batch_task(trigger_id=1, data=DOC_IMPORT_ITEMS)
    sandbox.control("add_token", {"token": "other-brand-token", "account": "other"})
    other = AltcraftClient(base_url, token="other-brand-token")

    with pytest.raises(AltcraftRejected) as caught:
        other.task_status(accepted.task_id)
    other.close()

    assert caught.value.code == "altcraft_error_404"


# -- rejected by the vendor (error envelope) -------------------------------------------------


@pytest.mark.parametrize(
    ("trigger_id", "error_number", "vendor_message", "error_debug"),
    [
        (404404, 404, "Trigger campaign not found", "trigger_id: 404404"),
        (INACTIVE_TRIGGER_ID, 409, "Trigger campaign is not active", "trigger_id: 2"),
    ],
)
@pytest.mark.parametrize("call", ["start_batch", "import_and_start_batch_task"])
def test_trigger_refusals_are_rejected_under_http_200(
    sandbox: AltcraftSandbox,
    client: AltcraftClient,
    caplog: pytest.LogCaptureFixture,
    call: str,
    trigger_id: int,
    error_number: int,
    vendor_message: str,
    error_debug: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    data = DOC_IMPORT_ITEMS if call == "import_and_start_batch_task" else [{"email": "a@b.co"}]

    with pytest.raises(AltcraftRejected) as caught:
        getattr(client, call)(trigger_id=trigger_id, data=data)

    error = caught.value
    assert isinstance(error, Rejected) and error.advice
    assert error.failure_class is FailureClass.REJECTED
    assert error.code == f"altcraft_error_{error_number}"
    assert error.error_number == error_number
    assert error.status_code == 200
    assert error.vendor_message == vendor_message
    assert error.error_debug == error_debug
    assert error.exchange is not None and error.exchange.status_code == 200
    state = sandbox.state()
    assert state["launch_count"] == 0 and state["tasks"] == {}
    assert_no_secret(caplog, error)


def test_an_unknown_token_is_rejected(
    sandbox: AltcraftSandbox, base_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = AltcraftClient(base_url, token="s3cr3t-altcraft-token-9f2c41-revoked")

    with pytest.raises(AltcraftRejected) as caught:
        client.start_batch(trigger_id=1, data=[{"email": "example1@example.com"}])
    client.close()

    assert caught.value.code == "altcraft_error_401"
    assert caught.value.vendor_message == "Invalid token"
    assert "revoked" not in json.dumps(caught.value.exchange.as_dict())
    assert sandbox.state()["launch_count"] == 0


@pytest.mark.parametrize("call", ["start_batch", "import_and_start_batch_task"])
def test_the_vendors_body_limit_refusal_is_rejected_as_body_too_large(
    sandbox: AltcraftSandbox, client: AltcraftClient, call: str
) -> None:
    # The installation's limit is lower than the client was told: the vendor refuses.
    sandbox.control("set_body_limit", {"bytes": 100})
    data = DOC_IMPORT_ITEMS if call == "import_and_start_batch_task" else [{"email": "a@b.co"}]

    with pytest.raises(VendorBodyLimitExceeded) as caught:
        getattr(client, call)(trigger_id=8, data=data)

    error = caught.value
    assert error.code == "body_too_large"
    assert "smaller batches" in error.advice
    assert error.failure_class is FailureClass.REJECTED
    assert (error.status_code, error.error_number) == (400, 400)
    assert error.vendor_message == "Invalid request"
    assert error.error_debug == "http: request body too large"
    assert json.loads(error.exchange.response_body) == {
        "error": 400,
        "error_debug": "http: request body too large",
        "error_text": "Invalid request",
    }
    assert sandbox.state()["launch_count"] == 0


# -- throttled, server error, not sent, outcome unknown ----------------------------------------


def test_a_rate_limited_token_is_throttled_with_the_wait_to_honour(
    sandbox: AltcraftSandbox, client: AltcraftClient
) -> None:
    sandbox.control("set_rate_limit", {"token": SECRET_TOKEN, "requests": 1, "per_seconds": 60})
    client.start_batch(trigger_id=1, data=[{"email": "example1@example.com"}])
    sandbox.clock.advance(15)

    with pytest.raises(Throttled) as caught:
        client.start_batch(trigger_id=1, data=[{"email": "example1@example.com"}])

    error = caught.value
    assert isinstance(error, AltcraftThrottled) and error.advice
    assert error.failure_class is FailureClass.THROTTLED
    assert (error.code, error.status_code, error.retry_after) == ("rate_limited", 429, 45.0)
    assert error.vendor_message == "Too many requests"
    assert sandbox.state()["launch_count"] == 1
    sandbox.clock.advance(45)
    client.start_batch(trigger_id=1, data=[{"email": "example1@example.com"}])
    assert sandbox.state()["launch_count"] == 2


@pytest.mark.parametrize("status", [500, 503])
@pytest.mark.parametrize(
    ("route_name", "call"),
    [
        ("start_batch", "start"),
        ("import_and_start_batch_task", "import"),
        ("task_status", "status"),
    ],
)
def test_server_errors_are_server_errors(
    sandbox: AltcraftSandbox, client: AltcraftClient, status: int, route_name: str, call: str
) -> None:
    task_id = "1c1a5861-6d4c-4d6f-bd6a-3ca4f46b217d"
    sandbox.inject_fault(route_name, Fault.SERVER_ERROR, status=status)

    with pytest.raises(ServerError) as caught:
        if call == "start":
            client.start_batch(trigger_id=1, data=[{"email": "example1@example.com"}])
        elif call == "import":
            client.import_and_start_batch_task(trigger_id=1, data=DOC_IMPORT_ITEMS)
        else:
            client.task_status(task_id)

    assert isinstance(caught.value, AltcraftServerError) and caught.value.advice
    assert caught.value.failure_class is FailureClass.SERVER_ERROR
    assert (caught.value.code, caught.value.status_code) == (f"http_{status}", status)
    assert sandbox.state()["launch_count"] == 0 and sandbox.state()["tasks"] == {}


def test_a_closed_port_is_not_sent(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = AltcraftClient(f"http://127.0.0.1:{closed_port()}/altcraft", token=SECRET_TOKEN)

    with pytest.raises(NotSent) as caught:
        client.start_batch(trigger_id=1, data=[{"email": "example1@example.com"}])

    assert isinstance(caught.value, AltcraftNotSent)
    assert caught.value.failure_class is FailureClass.NOT_SENT
    assert caught.value.code == "connection_failed"
    assert caught.value.advice == "Nothing reached Altcraft. It is safe to try again."
    assert caught.value.exchange.status_code is None
    assert_no_secret(caplog, caught.value)


@pytest.mark.parametrize(
    ("fault", "launched"),
    [
        (Fault.DELAY_AFTER_PROCESSING, 1),
        (Fault.DROP_AFTER_PROCESSING, 1),
        (Fault.DROP_BEFORE_PROCESSING, 0),
    ],
)
def test_no_answer_after_sending_is_outcome_unknown(
    sandbox: AltcraftSandbox,
    base_url: str,
    caplog: pytest.LogCaptureFixture,
    fault: Fault,
    launched: int,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = AltcraftClient(base_url, token=SECRET_TOKEN, read_timeout=0.2)
    sandbox.inject_fault("start_batch", fault, seconds=0.6)

    with pytest.raises(OutcomeUnknown) as caught:
        client.start_batch(trigger_id=8, data=[{"email": "example1@example.com"}])
    client.close()

    assert isinstance(caught.value, NoAnswer)
    assert caught.value.failure_class is FailureClass.OUTCOME_UNKNOWN
    assert caught.value.code == "no_answer"
    assert "may have launched" in caught.value.advice
    # What really happened at the vendor, which the client could not know.
    assert sandbox.state()["launch_count"] == launched
    assert len(sandbox.received_on("start_batch")) == 1
    assert_no_secret(caplog, caught.value)


def test_no_answer_to_an_import_is_outcome_unknown_though_the_task_exists(
    sandbox: AltcraftSandbox, client: AltcraftClient
) -> None:
    sandbox.inject_fault("import_and_start_batch_task", Fault.DROP_AFTER_PROCESSING)

    with pytest.raises(NoAnswer):
        client.import_and_start_batch_task(trigger_id=1, data=DOC_IMPORT_ITEMS)

    assert len(sandbox.state()["tasks"]) == 1


def test_no_answer_to_a_status_read_says_asking_again_is_harmless(
    sandbox: AltcraftSandbox, client: AltcraftClient
) -> None:
    accepted = client.import_and_start_batch_task(trigger_id=1, data=DOC_IMPORT_ITEMS)
    sandbox.inject_fault("task_status", Fault.DROP_BEFORE_PROCESSING)

    with pytest.raises(StatusNoAnswer) as caught:
        client.task_status(accepted.task_id)

    assert caught.value.failure_class is FailureClass.OUTCOME_UNKNOWN
    assert "harmless" in caught.value.advice
    assert client.task_status(accepted.task_id).status == "pending"


# -- answers the client cannot read or did not expect ----------------------------------------


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (SandboxResponse.text(200, "<html>Gateway says hi</html>"), "not JSON"),
        (SandboxResponse.json(200, {"result": []}), "no error field"),
        (SandboxResponse.json(200, {"error": "0", "result": []}), "error not an integer"),
        (SandboxResponse.json(200, [{"profile_id": EXAMPLE1_ID}]), "not an object"),
        (SandboxResponse.json(200, {"error": 0, "result": "ok"}), "result not a list"),
        (SandboxResponse.json(200, {"error": 0, "result": [{"id": 1}]}), "entry without id"),
        (SandboxResponse(204), "no body"),
        (SandboxResponse.text(200, '{"error": 0, "result": [{"profile_id": "a"},'), "cut off"),
        (SandboxResponse.text(200, '{"error": 0, "result": [{"profile_id": "a"}]} x'), "extra"),
        (SandboxResponse.text(200, '{"error": 0, "result": [{"profile_id": "a"} 5]}'), "no comma"),
        (SandboxResponse.text(200, '{"error": 0, "result": [{"profile_id": "a"}, 5]}'), "mixed"),
        (SandboxResponse.text(200, '{"error": 0 "result": []}'), "no comma between keys"),
        (SandboxResponse.text(200, '{error: 0, "result": []}'), "unquoted key"),
    ],
)
def test_an_unreadable_launch_answer_is_outcome_unknown(
    scripted: tuple[ScriptedVendor, AltcraftClient], answer: SandboxResponse, why: str
) -> None:
    vendor, client = scripted
    vendor.answer = answer

    with pytest.raises(UnreadableLaunchAnswer) as caught:
        client.start_batch(trigger_id=1, data=[{"email": "example1@example.com"}])

    assert isinstance(caught.value, OutcomeUnknown), why
    assert "Check in Altcraft" in caught.value.advice
    assert caught.value.code == "unreadable_answer"
    assert caught.value.status_code == answer.status


def test_an_import_answer_without_a_task_id_is_outcome_unknown(
    scripted: tuple[ScriptedVendor, AltcraftClient],
) -> None:
    vendor, client = scripted
    vendor.answer = SandboxResponse.json(200, {"error": 0, "error_text": "Successful operation"})

    with pytest.raises(UnreadableLaunchAnswer):
        client.import_and_start_batch_task(trigger_id=1, data=DOC_IMPORT_ITEMS)


def test_a_null_result_is_an_empty_launch(
    scripted: tuple[ScriptedVendor, AltcraftClient],
) -> None:
    vendor, client = scripted
    vendor.answer = SandboxResponse.json(
        200, {"error": 0, "error_text": "Successful operation", "result": None}
    )

    result = client.start_batch(trigger_id=1, data=[{"email": "example1@example.com"}])

    assert result.profile_ids == []


def test_a_launch_answer_laid_out_as_the_docs_show_it_is_read(
    scripted: tuple[ScriptedVendor, AltcraftClient],
) -> None:
    vendor, client = scripted
    # The docs' response example, line for line (whitespace between every token).
    vendor.answer = SandboxResponse.text(
        200,
        '{\n"error": 0,\n"error_text": "Successful operation",\n"result": [\n{\n'
        f'"profile_id": "{EXAMPLE1_ID}"\n}},\n{{\n"profile_id": "{EXAMPLE2_ID}"\n}}\n]\n}}\n',
    )

    result = client.start_batch(trigger_id=8, data=[{"email": "example1@example.com"}])

    assert result.profile_ids == [EXAMPLE1_ID, EXAMPLE2_ID]
    assert result.profile_ids[-1] == EXAMPLE2_ID and result.profile_ids[:1] == [EXAMPLE1_ID]
    assert result.error_text == "Successful operation"


@pytest.mark.parametrize("separators", [(", ", ": "), (",", ":")], ids=["spaced", "minified"])
def test_a_launch_answer_of_300000_profiles_is_kept_compactly(
    scripted: tuple[ScriptedVendor, AltcraftClient], separators: tuple[str, str]
) -> None:
    """A 10 MB chunk reaches about 300,000 profiles, and the answer lists each one: reading it
    must cost the send worker about the answer's size, not a parse of 300,000 objects."""
    vendor, client = scripted
    profile_ids = [f"{index:024x}" for index in range(300_000)]
    answer = {
        "error": 0,
        "error_text": "Successful operation",
        "result": [{"profile_id": profile_id} for profile_id in profile_ids],
    }
    vendor.answer = SandboxResponse.text(200, json.dumps(answer, separators=separators))
    del answer
    answer_bytes = len(vendor.answer.body)
    tracemalloc.start()
    try:
        result = client.start_batch(trigger_id=8, data=[{"email": "example1@example.com"}])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert result.profile_ids == profile_ids
    # The answer's bytes as received and decoded, and the ids kept: parsed whole it took
    # about 10 times the answer's size.
    assert peak < 4 * answer_bytes, (
        f"peak {peak / 1e6:.1f} MB for a {answer_bytes / 1e6:.1f} MB answer"
    )


@pytest.mark.parametrize(
    "data",
    [
        None,
        {"status": "completed"},
        {"status": "", "progress": 100},
        {"status": "completed", "progress": 101},
        {"status": "completed", "progress": "100"},
        {"status": "completed", "progress": 100, "result": []},
        {"status": "completed", "progress": 100, "result": {"result": [{"profile": "x"}]}},
    ],
)
def test_an_unreadable_status_answer_is_a_server_error(
    scripted: tuple[ScriptedVendor, AltcraftClient], data: dict[str, Any] | None
) -> None:
    vendor, client = scripted
    vendor.answer = SandboxResponse.json(200, {"data": data, "error": 0, "error_text": ""})

    with pytest.raises(UnreadableStatusAnswer) as caught:
        client.task_status("1c1a5861-6d4c-4d6f-bd6a-3ca4f46b217d")

    assert isinstance(caught.value, ServerError)
    assert caught.value.code == "unreadable_answer"
    assert "harmless" in caught.value.advice


def test_the_xml_shaped_task_result_is_tolerated(
    scripted: tuple[ScriptedVendor, AltcraftClient],
) -> None:
    vendor, client = scripted
    result = {"captured": 0, "errors": [], "status": "ok"}
    vendor.answer = SandboxResponse.json(
        200,
        {
            "data": {"progress": 100, "result": result, "status": "completed"},
            "error": 0,
            "error_text": "Successful operation",
        },
    )

    status = client.task_status("30421978-7f6d-4f39-913f-fb6cad8e2477")

    assert (status.status, status.progress, status.is_terminal) == ("completed", 100, True)
    assert status.profile_ids == []
    assert (status.result_error, status.result_error_text) == (None, "")
    assert status.result == result
    assert status.failed is False


@pytest.mark.parametrize(
    ("answer", "error_class", "code"),
    [
        (
            SandboxResponse.json(200, {"error": 500, "error_text": "Internal"}),
            AltcraftRejected,
            "altcraft_error_500",
        ),
        (
            SandboxResponse.json(403, {"error": 403, "error_text": "Forbidden"}),
            AltcraftRejected,
            "altcraft_error_403",
        ),
        (SandboxResponse.text(404, "404 page not found"), AltcraftRejected, "http_404"),
        (
            SandboxResponse(302, headers={"Location": "https://x.example/"}),
            AltcraftRejected,
            "unexpected_redirect",
        ),
        (
            SandboxResponse.text(429, "slow down", headers={"Retry-After": "7"}),
            Throttled,
            "rate_limited",
        ),
        (SandboxResponse.text(502, "Bad gateway"), ServerError, "http_502"),
    ],
)
def test_other_answers_land_in_one_failure_class(
    scripted: tuple[ScriptedVendor, AltcraftClient],
    answer: SandboxResponse,
    error_class: type[VendorError],
    code: str,
) -> None:
    vendor, client = scripted
    vendor.answer = answer

    with pytest.raises(error_class) as caught:
        client.start_batch(trigger_id=1, data=[{"email": "example1@example.com"}])

    assert caught.value.code == code
    assert caught.value.status_code == answer.status
    if error_class is Throttled:
        assert caught.value.retry_after == 7.0


def test_a_vendor_answer_echoing_the_token_is_redacted(
    scripted: tuple[ScriptedVendor, AltcraftClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    vendor, client = scripted
    vendor.answer = SandboxResponse.json(
        200,
        {
            "error": 401,
            "error_debug": f"token {SECRET_TOKEN} is revoked",
            "error_text": f"Invalid token {SECRET_TOKEN}",
        },
    )

    with pytest.raises(AltcraftRejected) as caught:
        client.start_batch(trigger_id=1, data=[{"email": "example1@example.com"}])

    assert caught.value.vendor_message == f"Invalid token {REDACTED}"
    assert caught.value.error_debug == f"token {REDACTED} is revoked"
    assert_no_secret(caplog, caught.value)


# -- checks before sending -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"trigger_id": 0}, "trigger_id"),
        ({"trigger_id": "8"}, "trigger_id"),
        ({"trigger_id": True}, "trigger_id"),
        ({"matching": "mail"}, "matching"),
        ({"matching": "custom", "data": [{"field_value": "1"}]}, "field_name"),
        ({"field_name": "Custom_ID"}, "field_name"),
        ({"data": []}, "non-empty"),
        ({"data": ["example1@example.com"]}, "object"),
        ({"data": [{"phone": "+79000000000"}]}, "'email'"),
        ({"matching": "phone"}, "'phone'"),
        ({"data": [{"email": "  "}]}, "'email'"),
        ({"content": ["page"]}, "content"),
        ({"custom_data": "x"}, "custom_data"),
        ({"attach": {"name": "a.txt"}}, "attach"),
        ({"skip_triggers": "no"}, "skip_triggers"),
        ({"content": {"when": datetime(2025, 1, 1)}}, "serialisable"),
    ],
)
def test_start_batch_checks_parameters_before_sending(
    sandbox: AltcraftSandbox, client: AltcraftClient, arguments: dict[str, Any], message: str
) -> None:
    call = {"trigger_id": 8, "data": [{"email": "example1@example.com"}], **arguments}

    with pytest.raises(ConfigurationError, match=message):
        client.start_batch(**call)

    assert sandbox.received == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"data": [{"email": "x@example.com"}]}, "'data' object"),
        ({"data": [{"data": {"_fname": "Nobody"}}]}, "no value to match"),
        (
            {
                "matching": "email_profile",
                "data": [{"data": {"subscriptions": [{"email": "a@b.co"}]}}],
            },
            "no value",
        ),
        ({"matching": "custom", "field_name": "Custom_id"}, "no value"),
        ({"matching": "profile_id"}, "no value"),
        ({"timeout": {"seconds": 30}}, "timeout"),
        ({"timeout": {"minutes": -1}}, "timeout"),
        ({"timeout": {}}, "timeout"),
        ({"resource_id": 0}, "resource_id"),
        (
            {
                "resource_id": 21,
                "matching": "custom",
                "field_name": "Custom_id",
                "data": [{"data": {"Custom_id": "0001"}}],
            },
            "resource_id",
        ),
        ({"detect_geo": 1}, "detect_geo"),
        ({"skip_invalid_subscriptions": "yes"}, "skip_invalid_subscriptions"),
    ],
)
def test_import_checks_parameters_before_sending(
    sandbox: AltcraftSandbox, client: AltcraftClient, arguments: dict[str, Any], message: str
) -> None:
    call = {"trigger_id": 8, "data": DOC_IMPORT_ITEMS, **arguments}

    with pytest.raises(ConfigurationError, match=message):
        client.import_and_start_batch_task(**call)

    assert sandbox.received == []


@pytest.mark.parametrize(
    ("matching", "item"),
    [
        ("email", {"data": {"subscriptions": [{"channel": "email", "email": "a@b.co"}]}}),
        ("email", {"data": {"email": "a@b.co", "_fname": "Ann"}}),
        ("phone", {"data": {"phones": ["+79000000001"]}}),
        ("phone", {"data": {"subscriptions": [{"channel": "phone", "phone": "+79000000001"}]}}),
        ("profile_id", {"data": {"profile_id": EXAMPLE1_ID, "_fname": "Vic"}}),
    ],
)
def test_import_items_carry_their_matching_value_inside_data(
    sandbox: AltcraftSandbox, client: AltcraftClient, matching: str, item: dict[str, Any]
) -> None:
    accepted = client.import_and_start_batch_task(trigger_id=1, matching=matching, data=[item])
    sandbox.clock.advance(5)

    assert len(client.task_status(accepted.task_id).profile_ids) == 1


@pytest.mark.parametrize(
    ("matching", "item"),
    [
        ("email", {"email": "a@b.co", "data": {"_fname": "Ann"}}),
        ("profile_id", {"profile_id": EXAMPLE1_ID, "data": {"_fname": "Vic"}}),
        ("custom", {"field_value": "7", "data": {"Custom_ID": "7"}}),
    ],
)
def test_import_items_with_a_value_beside_data_are_refused_before_sending(
    sandbox: AltcraftSandbox, client: AltcraftClient, matching: str, item: dict[str, Any]
) -> None:
    field_name = "Custom_ID" if matching == "custom" else None
    with pytest.raises(ConfigurationError, match="beside 'data'"):
        client.import_and_start_batch_task(
            trigger_id=1, matching=matching, field_name=field_name, data=[item]
        )

    assert sandbox.received == []


def test_task_status_and_constructor_check_before_sending(
    sandbox: AltcraftSandbox, client: AltcraftClient, base_url: str
) -> None:
    with pytest.raises(ConfigurationError):
        client.task_status("  ")
    with pytest.raises(ConfigurationError):
        AltcraftClient(base_url, token="")
    with pytest.raises(ConfigurationError):
        AltcraftClient(base_url, token=SECRET_TOKEN, body_limit_bytes=0)
    with pytest.raises(ConfigurationError):
        AltcraftClient("altcraft.example.com", token=SECRET_TOKEN)
    assert sandbox.received == []


# -- body size limit and chunking ------------------------------------------------------------


def padded_launch(size: int) -> dict[str, Any]:
    """start_batch arguments whose body is exactly `size` bytes (padding in `content`)."""
    base = {
        "token": SECRET_TOKEN,
        "format": "json",
        "trigger_id": 8,
        "matching": "email",
        "data": [{"email": "example1@example.com"}],
        "content": {"pad": ""},
    }
    padding = size - len(minified_json(base))
    return {
        "trigger_id": 8,
        "data": [{"email": "example1@example.com"}],
        "content": {"pad": "x" * padding},
    }


def test_the_default_limit_is_ten_million_bytes_checked_before_sending(
    sandbox: AltcraftSandbox, client: AltcraftClient
) -> None:
    assert DEFAULT_BODY_LIMIT_BYTES == 10_000_000
    assert client.body_limit_bytes == 10_000_000

    with pytest.raises(BodyTooLarge) as caught:
        client.start_batch(**padded_launch(10_000_001))
    assert (caught.value.size_bytes, caught.value.limit_bytes) == (10_000_001, 10_000_000)
    assert isinstance(caught.value, ConfigurationError)
    assert SECRET_TOKEN not in str(caught.value)
    assert sandbox.received == []

    result = client.start_batch(**padded_launch(10_000_000))
    assert result.profile_ids == [EXAMPLE1_ID]
    assert len(sandbox.received_on("start_batch")[0].body.encode()) == 10_000_000
    # The record of a 10 MB body is capped, not copied whole.
    assert len(result.exchange.request_body) < 100_000


def test_the_body_limit_is_configurable_per_client(sandbox: AltcraftSandbox, base_url: str) -> None:
    client = AltcraftClient(base_url, token=SECRET_TOKEN, body_limit_bytes=500)

    with pytest.raises(BodyTooLarge):
        client.start_batch(**padded_launch(501))
    client.start_batch(**padded_launch(500))
    client.close()

    assert len(sandbox.received) == 1


def test_split_start_batch_data_makes_chunks_that_each_fit(
    sandbox: AltcraftSandbox, base_url: str
) -> None:
    limit = 400
    sandbox.control("set_body_limit", {"bytes": limit})  # the vendor enforces the same limit
    client = AltcraftClient(base_url, token=SECRET_TOKEN, body_limit_bytes=limit)
    data = [{"email": f"person{number}@example.com"} for number in range(40)]
    data[3] = {"email": "example1@example.com"}
    data[30] = {"email": "example2@example.com"}
    options = {"trigger_id": 8, "content": {"page": "spring"}}

    chunks = client.split_start_batch_data(data, **options)

    assert [item for chunk in chunks for item in chunk] == data
    assert len(chunks) > 1
    for number, chunk in enumerate(chunks):
        body = minified_json(
            {
                "token": SECRET_TOKEN,
                "format": "json",
                "trigger_id": 8,
                "matching": "email",
                "data": chunk,
                "content": {"page": "spring"},
            }
        )
        assert len(body) <= limit
        if number + 1 < len(chunks):  # greedy: one more item would not have fitted
            longer = minified_json(
                {
                    "token": SECRET_TOKEN,
                    "format": "json",
                    "trigger_id": 8,
                    "matching": "email",
                    "data": [*chunk, chunks[number + 1][0]],
                    "content": {"page": "spring"},
                }
            )
            assert len(longer) > limit
    profile_ids = [client.start_batch(data=chunk, **options).profile_ids for chunk in chunks]
    client.close()

    assert sorted(i for ids in profile_ids for i in ids) == [EXAMPLE1_ID, EXAMPLE2_ID]
    assert len(sandbox.received_on("start_batch")) == len(chunks)


def test_split_import_data_makes_chunks_that_each_fit(
    sandbox: AltcraftSandbox, base_url: str
) -> None:
    limit = 700
    sandbox.control("set_body_limit", {"bytes": limit})
    client = AltcraftClient(base_url, token=SECRET_TOKEN, body_limit_bytes=limit)
    data = [{"data": {"email": f"p{n}@example.com", "_fname": "Ann"}} for n in range(30)]

    chunks = client.split_import_data(data, trigger_id=1, timeout={"minutes": 5})
    for chunk in chunks:
        client.import_and_start_batch_task(trigger_id=1, timeout={"minutes": 5}, data=chunk)
    client.close()

    assert [item for chunk in chunks for item in chunk] == data
    assert len(sandbox.state()["tasks"]) == len(chunks) > 1


def test_an_item_too_large_for_any_chunk_is_refused(client: AltcraftClient) -> None:
    client.body_limit_bytes = 200
    data = [{"email": "a@b.co"}, {"email": "x" * 300 + "@example.com"}]

    with pytest.raises(BodyTooLarge, match="data item 1 alone"):
        client.split_start_batch_data(data, trigger_id=1)


def test_split_items_to_fit_counts_bytes_exactly() -> None:
    items = [{"v": "é"}, {"v": "ab"}, {"v": "c"}]  # "é" is 2 bytes in UTF-8
    sizes = [len(minified_json(item)) for item in items]  # 10, 10, 9

    assert split_items_to_fit(items, overhead_bytes=2, limit_bytes=2 + 10 + 1 + 10) == [
        items[:2],
        items[2:],
    ]
    assert split_items_to_fit(items, overhead_bytes=2, limit_bytes=2 + sum(sizes) + 2) == [items]
    assert split_items_to_fit(items, overhead_bytes=2, limit_bytes=2 + sum(sizes) + 1) == [
        items[:2],
        items[2:],
    ]
