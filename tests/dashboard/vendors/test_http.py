"""reach(): DNS, TCP and TLS to a vendor's host without sending a request (the connection test of
a vendor whose only endpoint acts)."""

from __future__ import annotations

import dataclasses
import http.server
import json
import socket
import ssl
import threading
import time

import pytest

from dashboard.vendors import http as vendor_http
from tests.dashboard.vendors.test_destinations import _self_signed


def wait_for(condition, what: str, seconds: float = 30.0) -> None:
    """Wait until `condition()` holds (a generous deadline, never a fixed sleep)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {seconds} s for {what}")
        time.sleep(0.01)


@pytest.fixture
def tls_vendor(settings, monkeypatch, tmp_path):
    """A TLS server with a certificate for vendor.test (resolved to 127.0.0.1), counting every
    request it receives; yields (port, certificate path, received requests)."""
    cert, key = _self_signed(tmp_path, "vendor.test")
    received: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            received.append("GET")
            self.send_response(200)
            self.end_headers()

        do_POST = do_HEAD = do_GET

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    real = socket.getaddrinfo

    def fake(host, port_, *args, **kwargs):
        if host in ("vendor.test", "other.test"):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port_))]
        return real(host, port_, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    settings.VENDOR_HOST_ALLOWLIST = ["vendor.test", "other.test"]
    try:
        yield server.server_address[1], cert, received
    finally:
        server.shutdown()
        server.server_close()


def test_a_trusted_certificate_is_reached_over_tls_without_a_request(tls_vendor, monkeypatch):
    port, cert, received = tls_vendor
    monkeypatch.setattr(vendor_http.certifi, "where", lambda: cert)

    result = vendor_http.reach(f"https://vendor.test:{port}/api")

    assert result.reached, result.description
    assert result.description == f"Reached vendor.test:{port} over TLS (certificate valid)."
    assert received == []


def test_a_certificate_for_another_name_fails(tls_vendor, monkeypatch):
    port, cert, received = tls_vendor
    monkeypatch.setattr(vendor_http.certifi, "where", lambda: cert)

    result = vendor_http.reach(f"https://other.test:{port}/api")

    assert not result.reached
    assert f"Could not open a TLS connection to other.test:{port}" in result.description
    assert received == []


def test_an_untrusted_certificate_fails(tls_vendor):
    port, _cert, received = tls_vendor

    result = vendor_http.reach(f"https://vendor.test:{port}/api")

    assert not result.reached
    assert "CERTIFICATE_VERIFY_FAILED" in result.description
    assert received == []


def test_a_call_over_tls_checks_the_certificate_against_the_host_name(tls_vendor):
    port, cert, received = tls_vendor

    response, _ = vendor_http.VendorHttp(f"https://vendor.test:{port}", ca_certs=cert).request(
        "POST", "/run", body=b"{}"
    )
    assert response.status_code == 200
    assert len(received) == 1

    for base_url, ca_certs in [
        (f"https://other.test:{port}", cert),  # a certificate for another name
        (f"https://vendor.test:{port}", None),  # a certificate no trusted authority signed
    ]:
        with pytest.raises(vendor_http.NotSent) as caught:
            vendor_http.VendorHttp(base_url, ca_certs=ca_certs).request("POST", "/run", body=b"{}")
        assert caught.value.code == "connection_failed"
        assert "CERTIFICATE_VERIFY_FAILED" in caught.value.exchange.error
    assert len(received) == 1


# -- VendorHttp.request: what reaches the vendor, and the failure class of each transport fault


@pytest.fixture
def plain_vendor(settings):
    """A plain HTTP vendor on 127.0.0.1 that records each request and answers as `answer` says:
    "ok" (200 with a JSON body), "redirect" (302), "reset" (reads the request, then closes
    without an answer), "close_after" (answers, then closes the idle connection); answer["peers"]
    lists each request's client port. Yields (base URL, received [(method, path, headers)], answer holder)."""
    received: list[tuple[str, str, dict[str, str]]] = []
    answer = {"kind": "ok"}
    peers = answer.setdefault("peers", [])  # the client port of each request

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            received.append((self.command, self.path, dict(self.headers.items())))
            peers.append(self.client_address[1])
            if answer["kind"] == "close_after":
                # Answers as if the connection stays open, then closes it while idle (a vendor's
                # keep-alive timeout).
                self.close_connection = True
            if answer["kind"] == "reset":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if answer["kind"] == "redirect":
                self.send_response(302)
                self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = b'{"ok":true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.VENDOR_HOST_ALLOWLIST = ["127.0.0.1"]
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api", received, answer
    finally:
        server.shutdown()
        server.server_close()


def test_a_call_sends_the_clients_headers_over_the_defaults_and_records_no_secret(plain_vendor):
    base_url, received, _ = plain_vendor
    client = vendor_http.VendorHttp(base_url, secrets=["top-secret"])

    response, exchange = client.request(
        "POST",
        "/run",
        headers={"accept": "application/json", "X-API-KEY": "top-secret"},
        body=b"{}",
    )

    assert response.status_code == 200 and response.json() == {"ok": True}
    assert response.headers.get("content-type") == "application/json"  # any case
    method, path, headers = received[0]
    assert (method, path) == ("POST", "/api/run")
    # The client's Accept replaces the default one whatever its case: one header, not two.
    assert [name for name in headers if name.lower() == "accept"] == ["accept"]
    assert headers["accept"] == "application/json"
    assert headers["User-Agent"] == "TriggerDesk"
    assert headers["X-API-KEY"] == "top-secret"
    assert exchange.request_headers["X-API-KEY"] == vendor_http.REDACTED
    assert "top-secret" not in repr(exchange.as_dict())


def test_an_exchange_is_stored_with_every_field_of_its_record():
    """What an attempt row keeps of a call: every field, copied (the row must not share the
    record's dictionaries)."""
    exchange = vendor_http.Exchange(
        method="POST",
        url="https://vendor.example/run",
        request_headers={"x-api-key": vendor_http.REDACTED},
        request_body='{"topic_key": "t"}',
        status_code=202,
        response_headers={"Content-Type": "application/json"},
        response_body='{"execution_id": "e-1"}',
        latency_ms=12.5,
    )

    stored = exchange.as_dict()

    assert stored == dataclasses.asdict(exchange)
    assert stored["request_headers"] is not exchange.request_headers
    assert json.loads(json.dumps(stored)) == stored


def test_a_redirect_is_answered_not_followed(plain_vendor):
    """Following it would send the request a second time, elsewhere."""
    base_url, received, answer = plain_vendor
    answer["kind"] = "redirect"

    response, _ = vendor_http.VendorHttp(base_url).request("POST", "/run", body=b"{}")

    assert response.status_code == 302
    assert len(received) == 1


def test_a_connection_closed_after_the_request_was_read_is_an_unknown_outcome(plain_vendor):
    base_url, received, answer = plain_vendor
    answer["kind"] = "reset"

    with pytest.raises(vendor_http.OutcomeUnknown) as caught:
        vendor_http.VendorHttp(base_url).request("POST", "/run", body=b"{}")

    assert caught.value.code == "no_answer"
    assert len(received) == 1  # never sent again by the HTTP client
    assert caught.value.exchange.status_code is None


def test_calls_reuse_one_keep_alive_connection(plain_vendor):
    base_url, received, answer = plain_vendor
    client = vendor_http.VendorHttp(base_url)

    for _ in range(3):
        response, _ = client.request("POST", "/run", body=b"{}")
        assert response.status_code == 200

    assert len(received) == 3
    assert len(set(answer["peers"])) == 1


def test_a_connection_the_vendor_closed_while_idle_is_not_written_to(plain_vendor):
    """The next call opens a new connection instead of writing to the closed one, where the
    request would be lost and its outcome unknown."""
    base_url, received, answer = plain_vendor
    client = vendor_http.VendorHttp(base_url)
    answer["kind"] = "close_after"
    client.request("POST", "/run", body=b"{}")
    idle = client._idle[0].sock
    wait_for(lambda: vendor_http.readable_now(idle), "the vendor's close to arrive")
    answer["kind"] = "ok"

    response, _ = client.request("POST", "/run", body=b"{}")

    assert response.status_code == 200
    assert len(received) == 2
    assert len(set(answer["peers"])) == 2


def test_a_route_with_characters_a_request_line_cannot_carry_is_percent_encoded(plain_vendor):
    base_url, received, _ = plain_vendor

    vendor_http.VendorHttp(base_url).request("POST", "/run x/é?a=b c", body=b"{}")

    assert received[0][1] == "/api/run%20x/%C3%A9?a=b%20c"


@pytest.mark.parametrize("value", ["line\r\nX-Injected: 1", "ключ"])
def test_a_header_that_cannot_be_written_is_not_sent(plain_vendor, value):
    base_url, received, _ = plain_vendor

    with pytest.raises(vendor_http.NotSent) as caught:
        vendor_http.VendorHttp(base_url).request("POST", "/run", headers={"X-Key": value})

    assert caught.value.code == "unencodable_request"
    assert received == []


def test_a_refused_connection_is_not_sent(settings):
    settings.VENDOR_HOST_ALLOWLIST = ["127.0.0.1"]
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, never listening: connections are refused

        with pytest.raises(vendor_http.NotSent) as caught:
            vendor_http.VendorHttp(f"http://127.0.0.1:{port}").request("POST", "/run")

    assert caught.value.code == "connection_failed"
