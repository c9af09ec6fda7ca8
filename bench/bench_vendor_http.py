"""CPU of one vendor call, client side: VendorHttp against what it is built on.

Every run the engine sends costs two vendor calls (the send and its status read), so a call's
CPU counts twice in the cost per send (issue 24 item 2). This measures the client's own CPU
(`time.process_time` of this process, one thread) per POST to a local keep-alive server running
in a process of its own, for:
- `VendorHttp.request`, the product (urllib3, checked destinations, the redacted record);
- `requests.Session.request`, which VendorHttp used before;
- a urllib3 connection pool, and Python's `http.client`, what each layer adds.

Usage: .venv/bin/python bench/bench_vendor_http.py [--calls 3000]
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests
import urllib3

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from stack import print_figure  # noqa: E402  (bench/ on the path first)

BODY = b'{"eventGeneratorId":"00000000-abcd-abcd-abcd-000000000000","topicKey":"t","context":{}}'
HEADERS = {"X-API-KEY": "bench-key", "Content-Type": "application/json"}

SERVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 65536  # headers and body in one write, as a real server sends them

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"executionId":"e-1","status":"queued"}'
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def cpu_per_call(call: Callable[[], object], calls: int) -> float:
    """Milliseconds of this process's CPU per call, after a warm-up."""
    for _ in range(50):
        call()
    started = time.process_time()
    for _ in range(calls):
        call()
    return (time.process_time() - started) / calls * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.project.settings")
    os.environ.setdefault("SECRET_KEY", "bench-vendor-http-" * 3)
    os.environ.setdefault("CREDENTIALS_KEYS", "MDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA=")
    os.environ["VENDOR_HOST_ALLOWLIST"] = "127.0.0.1"
    os.environ["LOG_LEVEL"] = "WARNING"
    import django  # here: once the settings' environment above is set

    django.setup()
    from dashboard.vendors.http import VendorHttp  # here: needs the settings loaded

    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        base_url = f"http://127.0.0.1:{port}"
        print(f"vendor call CPU, client side: {args.calls} POSTs each to a local keep-alive server")

        vendor = VendorHttp(base_url, secrets=["bench-key"])
        session = requests.Session()
        pool = urllib3.HTTPConnectionPool("127.0.0.1", port, maxsize=1)
        connection = http.client.HTTPConnection("127.0.0.1", port)

        def plain() -> None:
            connection.request("POST", "/run", body=BODY, headers=HEADERS)
            connection.getresponse().read()

        measured = {
            "vendor_http": lambda: vendor.request("POST", "/run", headers=HEADERS, body=BODY),
            "requests": lambda: session.post(f"{base_url}/run", headers=HEADERS, data=BODY),
            "urllib3": lambda: pool.urlopen("POST", "/run", body=BODY, headers=HEADERS),
            "http_client": plain,
        }
        results = {name: cpu_per_call(call, args.calls) for name, call in measured.items()}
    finally:
        server.terminate()
        server.wait()
    for name, milliseconds in results.items():
        print(f"  {name:<12} {milliseconds:.3f} ms of CPU per call")
    for name, milliseconds in results.items():
        print_figure(f"{name}_cpu_ms_per_call", milliseconds)
    print_figure("vendor_http_to_requests_ratio", results["vendor_http"] / results["requests"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
