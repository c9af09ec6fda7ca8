"""/healthz, /readyz and /metrics against the real database and Redis; JSON log lines."""

from __future__ import annotations

import http.server
import io
import json
import logging
import socket
import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dashboard.observability import heartbeat
from dashboard.observability.logs import ContextFilter, JsonFormatter, redact
from dashboard.observability.probe import probe, probe_host
from dashboard.runs.models import Operation, RunAttempt
from dashboard.runs.states import RunState
from tests.factories import RunAttemptFactory, RunFactory, VendorConnectionFactory

TOKEN = "metrics-token-for-tests"


@pytest.fixture
def redis_db(settings):
    client = heartbeat.redis_client()
    client.flushdb()
    yield client
    client.flushdb()


def beat_everything(client) -> None:
    for queue in ("send", "interactive", "poll"):
        heartbeat.beat_worker(client=client, queues=[queue], hostname=f"{queue}-1@host-a")
    heartbeat.record_sweep(client)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def samples(text: str) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


# -- liveness and readiness --------------------------------------------------------------------


def test_healthz_needs_nothing(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"alive": True}


@pytest.mark.parametrize(
    ("environ", "host"),
    [
        ({"ALLOWED_HOSTS": "triggerdesk.example.com"}, "triggerdesk.example.com"),
        ({"ALLOWED_HOSTS": " a.example.com , b.example.com"}, "a.example.com"),
        ({"ALLOWED_HOSTS": ".example.com"}, "example.com"),  # also matches the bare domain
        ({"ALLOWED_HOSTS": ""}, "localhost"),  # the settings' default list starts with it
        ({}, "localhost"),
    ],
)
def test_the_liveness_probe_sends_a_host_the_settings_allow(environ, host):
    assert probe_host(environ) == host


def test_the_liveness_probe_reads_allowed_hosts_from_its_file(tmp_path):
    secret = tmp_path / "allowed_hosts"
    secret.write_text("dash.example.com,other.example.com\n")

    assert probe_host({"ALLOWED_HOSTS_FILE": str(secret)}) == "dash.example.com"


@pytest.fixture
def host_checking_server():
    """Answers /healthz 200 for Host "localhost", 400 for any other Host (as Django does)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status = 400 if self.headers["Host"] != "localhost" else 200
            self.send_response(status if self.path == "/healthz" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_liveness_probe_fails_on_anything_but_200(host_checking_server):
    base = host_checking_server
    ok, _ = probe(f"{base}/healthz", {"ALLOWED_HOSTS": "localhost"})
    refused, why = probe(f"{base}/healthz", {"ALLOWED_HOSTS": "elsewhere.example"})
    missing, _ = probe(f"{base}/no-such-page", {"ALLOWED_HOSTS": "localhost"})
    closed, unreachable = probe(f"http://127.0.0.1:{closed_port()}/healthz", {})

    assert ok and not refused and not missing and not closed
    assert why == "HTTP 400" and "ConnectionRefusedError" in unreachable


@pytest.mark.django_db
def test_readyz_is_ready_with_database_redis_workers_and_a_recent_sweep(client, redis_db):
    beat_everything(redis_db)

    response = client.get("/readyz")

    assert response.status_code == 200, response.json()
    checks = response.json()["checks"]
    assert {name for name, check in checks.items() if check["ok"]} == {
        "database",
        "redis",
        "worker:send",
        "worker:interactive",
        "worker:poll",
        "beat:sweep",
    }


@pytest.mark.django_db
def test_readyz_fails_when_a_queue_has_no_worker_heartbeat(client, redis_db):
    beat_everything(redis_db)
    redis_db.delete(heartbeat.worker_key("poll", "poll-1@host-a"))

    response = client.get("/readyz")

    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["worker:poll"] == {"ok": False, "detail": "no worker beat recently"}
    assert checks["worker:send"]["ok"]


@pytest.mark.django_db
def test_readyz_fails_when_the_sweeper_stopped(client, redis_db):
    beat_everything(redis_db)
    redis_db.delete(heartbeat.SWEEP_KEY)
    assert client.get("/readyz").json()["checks"]["beat:sweep"]["ok"] is False

    redis_db.set(heartbeat.SWEEP_KEY, 1_000_000)  # 1970: long ago
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["beat:sweep"]["ok"] is False


@pytest.mark.django_db
def test_readyz_fails_when_redis_is_gone(client, settings, redis_db):
    beat_everything(redis_db)
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True
    assert "127.0.0.1" not in response.text  # reasons name the failure, not the address


# -- metrics -----------------------------------------------------------------------------------


def test_metrics_are_off_without_a_token(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404


def test_metrics_refuse_a_wrong_token(client, settings):
    settings.METRICS_TOKEN = TOKEN
    assert client.get("/metrics").status_code == 401
    response = client.get("/metrics", headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401
    assert TOKEN not in response.text


@pytest.mark.django_db
def test_metrics_after_runs(client, settings, redis_db, team):
    from dashboard.audit.trail import audit_verify
    from dashboard.runs.operations import RateRule
    from dashboard.runs.rate_limits import RedisRateLimiter

    settings.METRICS_TOKEN = TOKEN
    beat_everything(redis_db)
    connection = VendorConnectionFactory(tenant=team.tenant, kind="optimove_campaigns")
    succeeded = RunFactory(
        tenant=team.tenant,
        connection=connection,
        operation=Operation.OPTIMOVE_RUN_EVENT_GENERATOR,
        state=RunState.SUCCEEDED,
    )
    RunAttemptFactory(run=succeeded, latency_ms=42.0, status_code=201)
    RunAttemptFactory(run=succeeded, purpose=RunAttempt.Purpose.POLL, latency_ms=3000.0)
    unknown = RunFactory(
        tenant=team.tenant, connection=connection, state=RunState.OUTCOME_UNKNOWN, needs_person=True
    )
    RunAttemptFactory(
        run=unknown, latency_ms=None, status_code=None, failure_class="outcome_unknown"
    )
    RunFactory(tenant=team.tenant)  # TalkifAI, awaiting approval
    redis_db.lpush("send", "message-1", "message-2")
    limiter = RedisRateLimiter(settings.REDIS_URL)
    rule = RateRule(key="optimove_campaigns:acme", limit=1, period_seconds=60, burst=1)
    limiter.acquire(rule)
    assert limiter.acquire(rule) > 0  # told to wait
    audit_verify()  # records one AuditVerification per chain, as verify_audit and beat do

    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    found = samples(response.text)

    def value(name: str, **labels: str) -> float:
        return found[(name, tuple(sorted(labels.items())))]

    assert (
        value(
            "triggerdesk_runs",
            state="succeeded",
            vendor="optimove_campaigns",
            operation="optimove_run_event_generator",
        )
        == 1
    )
    assert (
        value("triggerdesk_runs_outcome_unknown", vendor="optimove_campaigns", needs_person="true")
        == 1
    )
    assert value("triggerdesk_approvals_waiting", tenant="acme") == 1
    # The send answered in 42 ms: in the 0.05 s bucket, not the 0.025 s one.
    histogram = {"vendor": "optimove_campaigns", "purpose": "send"}
    assert value("triggerdesk_vendor_request_duration_seconds_bucket", le="0.025", **histogram) == 0
    assert value("triggerdesk_vendor_request_duration_seconds_bucket", le="0.05", **histogram) == 1
    assert value("triggerdesk_vendor_request_duration_seconds_count", **histogram) == 1
    assert value("triggerdesk_vendor_request_duration_seconds_sum", **histogram) == pytest.approx(
        0.042
    )
    assert (
        value(
            "triggerdesk_vendor_responses_total",
            vendor="optimove_campaigns",
            status_code="201",
            failure_class="none",
        )
        == 1
    )
    assert (
        value(
            "triggerdesk_vendor_responses_total",
            vendor="optimove_campaigns",
            status_code="none",
            failure_class="outcome_unknown",
        )
        == 1
    )
    assert value("triggerdesk_queue_depth", queue="send") == 2
    assert value("triggerdesk_queue_depth", queue="poll") == 0
    assert value("triggerdesk_workers", queue="send") == 1
    assert value("triggerdesk_rate_limiter_waits_total", rule="optimove_campaigns:acme") == 1
    assert value("triggerdesk_rate_limiter_wait_seconds_total", rule="optimove_campaigns:acme") > 0
    from dashboard.models import AuditVerification

    verifications = list(AuditVerification.objects.all())
    assert verifications
    for verification in verifications:
        # The factories make runs without their audit rows: a short trail is a finding (0).
        ok = value("triggerdesk_audit_verification_ok", chain=verification.chain)
        assert ok == (1 if verification.ok else 0)
    assert value("triggerdesk_redis_up") == 1
    assert "SECRETVALUE" not in response.text


# -- logs --------------------------------------------------------------------------------------


@pytest.fixture
def json_log():
    """Every log line of the test, as the production handler writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old_level)


def parsed(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.django_db
def test_request_log_lines_are_json_with_request_tenant_and_user(team, json_log):
    client = team.client_for("operator")
    response = client.get(f"/t/{team.tenant.slug}/", headers={"X-Request-ID": "req-abcdef123"})

    assert response["X-Request-ID"] == "req-abcdef123"
    lines = parsed(json_log)
    request_line = next(line for line in lines if line["logger"] == "triggerdesk.request")
    assert request_line["request_id"] == "req-abcdef123"
    assert request_line["tenant"] == team.tenant.slug
    assert request_line["user"] == team.operator.user.get_username()
    assert request_line["status"] == 200
    assert request_line["path"] == f"/t/{team.tenant.slug}/"


@pytest.mark.django_db
def test_a_malformed_request_id_is_replaced(client, json_log):
    response = client.get("/login/", headers={"X-Request-ID": "bad id\nwith newline"})
    assert response["X-Request-ID"] != "bad id\nwith newline"
    assert len(response["X-Request-ID"]) == 32


@pytest.mark.django_db
def test_failed_login_logs_no_password(client, json_log):
    client.post("/login/", {"username": "mallory", "password": "hunter2-Secret-Password"})
    client.get("/login/?token=abc-query-secret")

    text = json_log.getvalue()
    assert parsed(json_log)  # every line parses
    assert "hunter2-Secret-Password" not in text
    assert "abc-query-secret" not in text  # the request line logs the path, never the query


@pytest.mark.django_db
@pytest.mark.parametrize("prefix", ["/invite", "/account/password/reset"])
def test_a_one_time_link_token_stays_out_of_the_request_log(client, json_log, prefix):
    token = "d0ne42-0123456789abcdef0123456789abcdef"
    client.get(f"{prefix}/MQ/{token}/")

    text = json_log.getvalue()
    assert token not in text
    request_line = next(
        line for line in parsed(json_log) if line["logger"] == "triggerdesk.request"
    )
    assert request_line["path"] == f"{prefix}/MQ/[redacted]/"


def test_secret_looking_fields_and_text_are_redacted(json_log):
    logging.getLogger("triggerdesk.test").warning(
        "calling vendor with Authorization: Bearer sk-live-123456 and x-api-key: key-987654",
        extra={"api_key": "key-987654", "headers": {"X-Brand-Key": "brand-555"}, "count": 3},
    )

    line = parsed(json_log)[-1]
    text = json.dumps(line)
    for secret in ("sk-live-123456", "key-987654", "brand-555"):
        assert secret not in text
    assert line["api_key"] == "[redacted]"
    assert line["headers"] == {"X-Brand-Key": "[redacted]"}
    assert line["count"] == 3
    assert redact({"password": "x", "nested": [{"token": "y"}]}) == {
        "password": "[redacted]",
        "nested": [{"token": "[redacted]"}],
    }
