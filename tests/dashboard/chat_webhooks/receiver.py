"""A local chat webhook receiver: a small threaded http.server that records every post."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ChatReceiver:
    """Listens on 127.0.0.1; `posts` holds (path, parsed JSON body, raw body) per POST, and
    `status` is what it answers (set it to 500 to play a receiver that is down)."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, Any, str]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                receiver.posts.append((self.path, json.loads(raw or "null"), raw))
                self.send_response(receiver.status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def start(self) -> ChatReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bodies(self, path: str) -> list[Any]:
        return [body for posted, body, _raw in self.posts if posted == path]

    def wait_for(self, count: int, *, timeout: float = 60.0) -> list[tuple[str, Any, str]]:
        """The posts, once there are at least `count` of them (fails after `timeout` s)."""
        deadline = time.monotonic() + timeout
        while len(self.posts) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} chat posts, got {len(self.posts)}")
            time.sleep(0.05)
        return list(self.posts)
