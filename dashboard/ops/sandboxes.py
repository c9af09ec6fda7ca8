"""All vendor sandboxes on one server, each under its own path prefix.

`make demo` and `manage.py run_sandboxes` serve them on a fixed port; the tests start the same
server on a free port. The demo tenant's connections point at these prefixes, which also proves
that every client honours a base URL with a path prefix.
"""

from __future__ import annotations

from django.utils.module_loading import import_string

from dashboard import plugins
from dashboard.vendors.sandbox import Sandbox, SandboxClock, SandboxServer


def prefixes() -> dict[str, str]:
    """Each vendor kind's path prefix, from the apps' `AppConfig.sandboxes` (kind -> (prefix,
    dotted path of the sandbox class)); nothing is imported."""
    return {kind: prefix for _label, (kind, (prefix, _path)) in plugins.declared("sandboxes")}


def build_sandboxes(clock: SandboxClock | None = None) -> dict[str, Sandbox]:
    """One sandbox per vendor kind the apps contribute, sharing one clock."""
    clock = clock or SandboxClock()
    return {
        kind: import_string(path)(clock)
        for _label, (kind, (_prefix, path)) in plugins.declared("sandboxes")
    }


def sandbox_server(
    sandboxes: dict[str, Sandbox], *, host: str = "127.0.0.1", port: int = 0
) -> SandboxServer:
    """A server mounting each sandbox under its vendor kind's prefix."""
    return SandboxServer(
        {f"/{prefixes()[kind]}": sandbox for kind, sandbox in sandboxes.items()},
        host=host,
        port=port,
    )


def sandbox_base_url(root: str, kind: str) -> str:
    """The base URL of one vendor's sandbox under a server root URL."""
    return f"{root.rstrip('/')}/{prefixes()[kind]}"
