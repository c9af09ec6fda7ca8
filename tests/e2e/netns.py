"""Two network namespaces joined by a bridge, standing in for two machines.

Each namespace has its own network stack (own loopback, own address); a worker inside reaches
PostgreSQL, Redis and the sandboxes only over the bridge, through TCP forwarders the test
process runs on the host side (the services here listen on 127.0.0.1 only). Needs root and
`ip netns`; `available()` says why not when it cannot work.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

BRIDGE_ADDRESS = "10.231.0.1"


def _ip(*args: str, namespace: str | None = None) -> None:
    prefix = ["ip", "netns", "exec", namespace] if namespace else []
    subprocess.run([*prefix, "ip", *args], check=True, capture_output=True, timeout=20)


def available() -> str | None:
    """None when namespaces can be made here, else the reason."""
    if os.geteuid() != 0:
        return "needs root (ip netns)"
    probe = f"tdp{uuid.uuid4().hex[:6]}"
    try:
        _ip("netns", "add", probe)
    except (OSError, subprocess.CalledProcessError) as error:
        return f"ip netns add failed: {getattr(error, 'stderr', b'') or error}"
    with contextlib.suppress(subprocess.CalledProcessError):
        _ip("netns", "del", probe)
    return None


class Forwarder:
    """Accepts on the bridge address and pipes each connection to 127.0.0.1:<port>."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((BRIDGE_ADDRESS, 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.listener.close()


@dataclass
class Machines:
    namespaces: list[str]
    forwarders: dict[int, Forwarder]

    def port(self, target_port: int) -> int:
        return self.forwarders[target_port].port

    def prefix(self, index: int) -> list[str]:
        return ["ip", "netns", "exec", self.namespaces[index]]


@contextlib.contextmanager
def two_machines(target_ports: list[int]) -> Iterator[Machines]:
    """Two namespaces on a bridge, with forwarders to the given loopback ports."""
    tag = uuid.uuid4().hex[:4]
    bridge = f"tdbr{tag}"
    namespaces = [f"td{tag}a", f"td{tag}b"]
    forwarders: dict[int, Forwarder] = {}
    try:
        _ip("link", "add", bridge, "type", "bridge")
        _ip("addr", "add", f"{BRIDGE_ADDRESS}/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for number, namespace in enumerate(namespaces, start=2):
            host_end, inner_end = f"{namespace}h", f"{namespace}n"
            _ip("netns", "add", namespace)
            _ip("link", "add", host_end, "type", "veth", "peer", "name", inner_end)
            _ip("link", "set", inner_end, "netns", namespace)
            _ip("link", "set", host_end, "master", bridge)
            _ip("link", "set", host_end, "up")
            _ip("addr", "add", f"10.231.0.{number}/24", "dev", inner_end, namespace=namespace)
            _ip("link", "set", inner_end, "up", namespace=namespace)
            _ip("link", "set", "lo", "up", namespace=namespace)
        forwarders = {port: Forwarder(port) for port in target_ports}
        yield Machines(namespaces=namespaces, forwarders=forwarders)
    finally:
        for forwarder in forwarders.values():
            forwarder.close()
        for namespace in namespaces:
            with contextlib.suppress(subprocess.CalledProcessError, OSError):
                _ip("link", "del", f"{namespace}h")
            with contextlib.suppress(subprocess.CalledProcessError, OSError):
                _ip("netns", "del", namespace)
        with contextlib.suppress(subprocess.CalledProcessError, OSError):
            _ip("link", "del", bridge)
