"""Where vendor calls may go: public https hosts, or hosts on VENDOR_HOST_ALLOWLIST.

Checked where a connection is saved (form, service, command) and again for every connection the
HTTP layer opens, so DNS rebinding or a row written another way cannot get round it.
"""

from __future__ import annotations

import io
import socket
import threading

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from dashboard.audit.trail import Actor
from dashboard.models import VendorConnection
from dashboard.tenancy import services
from dashboard.vendors import destinations
from dashboard.vendors.http import DestinationRefused, VendorHttp, validate_base_url

REFUSED = [
    "http://169.254.169.254/latest",
    "https://169.254.169.254/latest",
    "https://10.0.0.5/api",
    "https://172.16.3.4",
    "https://192.168.1.1",
    "https://127.0.0.1",
    "https://127.1.2.3:8443/x",
    "https://localhost/x",
    "https://0.0.0.0",
    "https://100.64.0.1",
    "https://224.0.0.1",
    "https://240.0.0.1",
    "https://255.255.255.255",
    "https://[::1]/x",
    "https://[::]/x",
    "https://[fe80::1]",
    "https://[fc00::1]",
    "https://[ff02::1]",
    "https://[::ffff:169.254.169.254]",
    "https://[::ffff:a9fe:a9fe]",
    "https://[64:ff9b::a9fe:a9fe]",
    "https://[2002:a9fe:a9fe::1]",
    # Numeric spellings the resolver turns into 169.254.169.254 and 127.0.0.1.
    "https://2852039166/latest",
    "https://0xa9fea9fe/latest",
    "https://0xa9.0xfe.0xa9.0xfe/latest",
    "https://0251.0376.0251.0376/latest",
    "https://2130706433/",
    "https://0x7f.1/",
    "https://127.1/",
    # Plain http to a public host.
    "http://api.example.com/v1",
    "http://8.8.8.8/",
]

ACCEPTED = [
    "https://8.8.8.8/api",
    "https://[2606:4700:4700::1111]/api",
    # Does not resolve here: nothing can be reached now, and the connection-time check guards it.
    "https://api.example.com/prefix",
]


@pytest.fixture
def no_allow_list(settings):
    settings.VENDOR_HOST_ALLOWLIST = []


@pytest.mark.parametrize("url", REFUSED)
def test_non_public_hosts_and_plain_http_are_refused(url, no_allow_list):
    with pytest.raises(DestinationRefused):
        validate_base_url(url)


@pytest.mark.parametrize("url", ACCEPTED)
def test_public_https_hosts_are_accepted(url, no_allow_list):
    assert validate_base_url(url) == url


def test_credentials_in_the_url_are_refused(no_allow_list):
    with pytest.raises(Exception, match="user name or password"):
        validate_base_url("https://user:pw@api.example.com/")


def test_every_resolved_address_is_checked(no_allow_list, monkeypatch):
    real = socket.getaddrinfo

    def fake(host, *args, **kwargs):
        if host == "mixed.example":
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", 443)),
            ]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    with pytest.raises(DestinationRefused, match=r"mixed\.example \(10\.1\.2\.3\)"):
        validate_base_url("https://mixed.example/api")


def test_allow_list_entries_name_hosts_networks_and_ports(settings):
    settings.VENDOR_HOST_ALLOWLIST = ["127.0.0.1:8100", "sandbox.internal", "10.20.0.0/16"]
    assert validate_base_url("http://127.0.0.1:8100/altcraft")
    with pytest.raises(DestinationRefused):
        validate_base_url("http://127.0.0.1:8101/altcraft")
    with pytest.raises(DestinationRefused):
        validate_base_url("http://localhost:8100/altcraft")
    assert validate_base_url("http://10.20.3.4/x")
    with pytest.raises(DestinationRefused):
        validate_base_url("https://10.21.0.1/x")


def test_allow_list_parses_the_documented_forms():
    parse = destinations.parse_allow_entry
    assert parse("127.0.0.1:8100").port == 8100
    assert parse("[::1]:8100").network is not None
    assert parse("::1").network is not None
    assert parse("Sandbox.Internal:8443").host == "sandbox.internal"
    with pytest.raises(ValueError):
        parse("http://x/")


# -- where a connection is saved ---------------------------------------------------------------


@pytest.mark.django_db
def test_the_connection_form_refuses_a_metadata_address(team, no_allow_list):
    client = team.client_for("admin")
    response = client.post(
        reverse("connection_create", kwargs={"tenant_slug": team.tenant.slug}),
        {
            "kind": "altcraft",
            "name": "Metadata",
            "base_url": "http://169.254.169.254/latest",
            "token": "a-token-value-1234",
        },
    )
    assert response.status_code == 200
    assert "not a public internet address" in response.content.decode()
    assert not VendorConnection.objects.filter(name="Metadata").exists()


@pytest.mark.django_db
def test_the_edit_form_refuses_a_private_address(team, no_allow_list):
    from tests.factories import VendorConnectionFactory

    connection = VendorConnectionFactory(tenant=team.tenant, kind="altcraft")
    response = team.client_for("admin").post(
        reverse(
            "connection_edit",
            kwargs={"tenant_slug": team.tenant.slug, "connection_id": connection.pk},
        ),
        {"name": connection.name, "base_url": "https://192.168.0.10/", "is_active": "on"},
    )
    assert response.status_code == 200
    connection.refresh_from_db()
    assert connection.base_url == "https://api.example.com"


@pytest.mark.django_db
def test_the_service_refuses_whatever_calls_it(team, no_allow_list):
    with pytest.raises(ValidationError) as caught:
        services.connection_create(
            actor=Actor.system(),
            tenant=team.tenant,
            kind="altcraft",
            name="Internal",
            base_url="https://[::ffff:10.0.0.1]/",
            secrets={"token": "a-token-value-1234"},
        )
    assert "base_url" in caught.value.message_dict


@pytest.mark.django_db
def test_the_add_connection_command_refuses_it(team, no_allow_list, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("a-token-value-1234\n"))
    with pytest.raises(CommandError, match="not a public internet address"):
        call_command(
            "add_connection", team.tenant.slug, "altcraft", "Meta", "https://2852039166/latest"
        )
    assert not VendorConnection.objects.filter(name="Meta").exists()


# -- at request time ---------------------------------------------------------------------------


class ListeningSocket:
    """A loopback port that counts the connections it accepts."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.accepted = 0
        self.server.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.server.accept()
            except OSError:
                continue
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.server.close()


@pytest.fixture
def listening_socket():
    listener = ListeningSocket()
    yield listener
    listener.close()


def test_dns_rebinding_is_refused_at_connection_time(no_allow_list, monkeypatch, listening_socket):
    """The name was public when the client was built, and resolves to loopback when it calls."""
    answers = {"rebind.example": "93.184.216.34"}
    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    http = VendorHttp(f"https://rebind.example:{listening_socket.port}/api")
    answers["rebind.example"] = "127.0.0.1"
    with pytest.raises(DestinationRefused, match="not a public internet address"):
        http.request("POST", "/trigger", body=b"{}")
    assert listening_socket.accepted == 0


def test_a_url_stored_without_the_check_is_refused_by_the_http_layer(settings, listening_socket):
    settings.VENDOR_HOST_ALLOWLIST = ["127.0.0.1"]
    http = VendorHttp(f"http://127.0.0.1:{listening_socket.port}/api")
    settings.VENDOR_HOST_ALLOWLIST = []
    with pytest.raises(DestinationRefused):
        http.request("GET", "/status")
    assert listening_socket.accepted == 0


@pytest.mark.django_db
@pytest.mark.usefixtures("clean_redis")
def test_a_run_on_a_connection_row_pointing_inside_fails_without_sending(
    team, sandbox_connection, sandboxes, settings
):
    """A row written straight into the database (here by a factory) still cannot call inside."""
    from dashboard.clock import utc_now
    from dashboard.runs import services as run_services
    from dashboard.runs.states import RunState

    connection = sandbox_connection(team.tenant, "optimove_batch")  # http://127.0.0.1:<port>
    settings.VENDOR_HOST_ALLOWLIST = []
    run = run_services.run_submit(
        actor=Actor(user=team.operator.user),
        tenant=team.tenant,
        connection=connection,
        operation="optimove_trigger_daily",
        parameters={"wait_time_for_validation_seconds": None},
        idempotency_key="ssrf-1",
        approval_required=False,
        attestation="All of today's files have finished uploading.",
        utc_date=utc_now().date(),
        check_duplicates=False,
    )
    run_services.run_send(run_id=run.pk)
    run.refresh_from_db()
    assert run.state == RunState.FAILED
    assert "Not sent" in run.failure_message
    assert "not a public internet address" in run.failure_message
    assert sandboxes["optimove_batch"].received == []


def _self_signed(tmp_path, hostname: str) -> tuple[str, str]:
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def test_https_through_the_checked_address_still_verifies_the_host_name(
    settings, monkeypatch, tmp_path
):
    """The connection goes to the checked address, but TLS is verified against the host name:
    a certificate for vendor.test is accepted, and the same server under another name is not."""
    import http.server
    import ssl

    cert, key = _self_signed(tmp_path, "vendor.test")
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    server.RequestHandlerClass = type(
        "Ok",
        (http.server.BaseHTTPRequestHandler,),
        {
            "do_GET": lambda self: (
                self.send_response(200),
                self.send_header("Content-Length", "2"),
                self.end_headers(),
                self.wfile.write(b"ok"),
            ),
            "log_message": lambda self, *args: None,
        },
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    real = socket.getaddrinfo

    def fake(host, port_, *args, **kwargs):
        if host in ("vendor.test", "other.test"):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port_))]
        return real(host, port_, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    settings.VENDOR_HOST_ALLOWLIST = ["vendor.test", "other.test"]
    try:
        http_client = VendorHttp(f"https://vendor.test:{port}/api", ca_certs=cert)
        response, _ = http_client.request("GET", "/status")
        assert response.status_code == 200 and response.content == b"ok"

        other = VendorHttp(f"https://other.test:{port}/api", ca_certs=cert)
        from dashboard.vendors.http import NotSent

        with pytest.raises(NotSent):  # the certificate does not name other.test
            other.request("GET", "/status")
    finally:
        server.shutdown()
        server.server_close()
