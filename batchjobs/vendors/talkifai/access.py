"""TalkifAI access from a vendor connection: the client."""

from __future__ import annotations

from batchjobs.vendors.talkifai.client import (
    TalkifaiApiLayout,
    TalkifaiClient,
)
from dashboard.models import VendorConnection
from dashboard.runs.operations import (
    cached_client,
    connection_fingerprint,
)


def talkifai_client(connection: VendorConnection, secrets: dict[str, str]) -> TalkifaiClient:
    """The TalkifAI client for a connection; paths and auth scheme come from its options."""
    layout = TalkifaiApiLayout.from_overrides(connection.options.get("layout") or {})
    return cached_client(
        ("talkifai", *connection_fingerprint(connection, secrets)),
        lambda: TalkifaiClient(connection.base_url, api_key=secrets["api_key"], layout=layout),
    )
