"""Optimove API-triggered campaigns access from a vendor connection: the client and the per-brand rate rule."""

from __future__ import annotations

from campaigns.vendors.optimove_campaigns.client import (
    OptimoveCampaignsClient,
)
from dashboard.models import VendorConnection
from dashboard.runs.operations import (
    RateRule,
    account_key,
    cached_client,
    connection_fingerprint,
)

OPTIMOVE_REQUESTS_PER_SECOND = 500


# The sliding rule already keeps each request's place until a second after its answer, whatever
# the delays; the small margin is for the vendor's own clock and rounding at the window's edge.
RATE_SAFETY = 0.98


def optimove_campaigns_client(
    connection: VendorConnection, secrets: dict[str, str]
) -> OptimoveCampaignsClient:
    return cached_client(
        ("optimove_campaigns", *connection_fingerprint(connection, secrets)),
        lambda: OptimoveCampaignsClient(
            connection.base_url,
            api_key=secrets["api_key"],
            brand_key=secrets["brand_key"],
            pool_maxsize=int(connection.options.get("pool_maxsize", 100)),
        ),
    )


def optimove_brand_rate_rule(connection: VendorConnection, secrets: dict[str, str]) -> RateRule:
    """500 requests/s per brand (runs and status reads alike), shared by every worker."""
    per_second = float(
        connection.options.get("rate_limit_per_second", OPTIMOVE_REQUESTS_PER_SECOND)
    )
    return RateRule(
        key=account_key("optimove_campaigns", connection.base_url, secrets.get("brand_key", "")),
        limit=max(1, int(per_second * RATE_SAFETY)),
        period_seconds=1.0,
        sliding=True,
    )
