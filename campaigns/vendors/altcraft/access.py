"""Altcraft access from a vendor connection: the client and its request body limit."""

from __future__ import annotations

from campaigns.vendors.altcraft.client import (
    DEFAULT_BODY_LIMIT_BYTES,
    AltcraftClient,
)
from dashboard.models import VendorConnection
from dashboard.runs.operations import (
    cached_client,
    connection_fingerprint,
)


def altcraft_client(connection: VendorConnection, secrets: dict[str, str]) -> AltcraftClient:
    return cached_client(
        ("altcraft", *connection_fingerprint(connection, secrets)),
        lambda: AltcraftClient(
            connection.base_url,
            token=secrets["token"],
            body_limit_bytes=altcraft_body_limit(connection),
        ),
    )


def altcraft_body_limit(connection: VendorConnection) -> int:
    return int(connection.options.get("body_limit_bytes", DEFAULT_BODY_LIMIT_BYTES))
