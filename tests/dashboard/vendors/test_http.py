"""reach(): DNS, TCP and TLS to a vendor's host without sending a request (the connection test of
a vendor whose only endpoint acts)."""

from __future__ import annotations

import http.server
import socket
import ssl
import threading

import pytest

from dashboard.vendors import http as vendor_http
from tests.dashboard.vendors.test_destinations import _self_signed


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
