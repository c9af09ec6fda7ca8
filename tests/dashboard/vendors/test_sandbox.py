"""The sandbox framework and the shared HTTP plumbing, with a tiny echo vendor."""

import json
import logging

import pytest
import requests

from dashboard.vendors.http import FailureClass, NotSent, OutcomeUnknown, VendorHttp
from dashboard.vendors.sandbox import Fault, Sandbox, SandboxResponse, SandboxServer, route


class EchoSandbox(Sandbox):
    name = "echo"

    @route("POST", "/things/(?P<thing>[^/]+)/run")
    def run(self, request):
        return SandboxResponse.json(
            202, {"thing": request.params["thing"]}, effect={"ran": request.params["thing"]}
        )


@pytest.fixture(scope="module")
def echo():
    sandbox = EchoSandbox()
    with SandboxServer({"/some/prefix": sandbox}) as server:
        yield sandbox, server


@pytest.fixture
def sandbox(echo):
    echo[0].reset()
    return echo[0]


@pytest.fixture
def http(echo):
    return VendorHttp(echo[1].url("some/prefix"), secrets=["top-secret-key"], read_timeout=0.5)


def test_route_under_a_prefix_records_the_effect(sandbox, http):
    response, exchange = http.request(
        "POST", "/things/42/run", headers={"x-api-key": "top-secret-key"}, body=b"{}"
    )
    assert response.status_code == 202 and response.json() == {"thing": "42"}
    assert sandbox.received[0].effect == {"ran": "42"} and sandbox.received[0].processed
    assert exchange.request_headers["x-api-key"] == "[redacted]"


def test_control_api_state_hides_credentials(sandbox, http, echo):
    http.request(
        "POST",
        "/things/1/run",
        headers={"X-API-KEY": "top-secret-key"},
        body=b'{"token":"top-secret-key"}',
    )
    state = requests.get(echo[1].url("some/prefix") + "/__sandbox__/state", timeout=5).json()
    text = json.dumps(state)
    assert "top-secret-key" not in text
    assert state["received"][0]["headers"]["x-api-key"] == "[redacted]"
    # In-process, tests still see what was really sent.
    assert sandbox.received[0].headers["x-api-key"] == "top-secret-key"


@pytest.mark.parametrize(
    ("fault", "processed", "failure"),
    [
        (Fault.DROP_AFTER_PROCESSING, True, FailureClass.OUTCOME_UNKNOWN),
        (Fault.DROP_BEFORE_PROCESSING, False, FailureClass.OUTCOME_UNKNOWN),
        (Fault.DELAY_AFTER_PROCESSING, True, FailureClass.OUTCOME_UNKNOWN),
    ],
)
def test_faults_produce_their_failure_class(sandbox, http, fault, processed, failure):
    sandbox.inject_fault("run", fault, seconds=1.0)
    with pytest.raises(OutcomeUnknown) as raised:
        http.request("POST", "/things/9/run", body=b"{}")
    assert raised.value.failure_class is failure
    assert sandbox.received[0].processed is processed
    assert sandbox.received[0].fault == fault.value


def test_server_error_fault_answers_without_acting(sandbox, http):
    sandbox.inject_fault("run", Fault.SERVER_ERROR, status=503)
    response, _ = http.request("POST", "/things/9/run", body=b"{}")
    assert response.status_code == 503 and response.text == "Service Unavailable"
    assert not sandbox.received[0].processed


def test_closed_port_is_not_sent_and_logs_no_secret(caplog):
    caplog.set_level(logging.DEBUG)
    http = VendorHttp("http://127.0.0.1:9", secrets=["top-secret-key"])
    with pytest.raises(NotSent):
        http.request(
            "POST", "/things/1/run", headers={"x-api-key": "top-secret-key"}, body=b"top-secret-key"
        )
    assert "top-secret-key" not in caplog.text


def test_fault_on_unknown_route_is_refused(sandbox):
    with pytest.raises(KeyError):
        sandbox.inject_fault("nope", Fault.SERVER_ERROR)
