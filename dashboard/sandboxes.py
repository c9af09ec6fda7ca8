"""All vendor sandboxes on one server, each under its own path prefix.

`make demo` and `manage.py run_sandboxes` serve them on a fixed port; the tests start the same
server on a free port. The demo tenant's connections point at these prefixes, which also proves
that every client honours a base URL with a path prefix.
"""

from __future__ import annotations

from batchjobs.vendors.optimove_daily.sandbox import OptimoveDailySandbox
from batchjobs.vendors.talkifai.sandbox import TalkifaiSandbox
from campaigns.vendors.altcraft.sandbox import AltcraftSandbox
from campaigns.vendors.optimove_campaigns.sandbox import OptimoveCampaignsSandbox
from dashboard.vendors.sandbox import Sandbox, SandboxClock, SandboxServer

PREFIXES = {
    "optimove_batch": "optimove-batch",
    "optimove_campaigns": "optimove-campaigns",
    "altcraft": "altcraft",
    "talkifai": "talkifai",
}


def build_sandboxes(clock: SandboxClock | None = None) -> dict[str, Sandbox]:
    """One sandbox per vendor kind, sharing one clock."""
    clock = clock or SandboxClock()
    return {
        "optimove_batch": OptimoveDailySandbox(clock),
        "optimove_campaigns": OptimoveCampaignsSandbox(clock),
        "altcraft": AltcraftSandbox(clock),
        "talkifai": TalkifaiSandbox(clock),
    }


def sandbox_server(
    sandboxes: dict[str, Sandbox], *, host: str = "127.0.0.1", port: int = 0
) -> SandboxServer:
    """A server mounting each sandbox under its vendor kind's prefix."""
    return SandboxServer(
        {f"/{PREFIXES[kind]}": sandbox for kind, sandbox in sandboxes.items()}, host=host, port=port
    )


def sandbox_base_url(root: str, kind: str) -> str:
    """The base URL of one vendor's sandbox under a server root URL."""
    return f"{root.rstrip('/')}/{PREFIXES[kind]}"
