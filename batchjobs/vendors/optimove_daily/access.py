"""Optimove TriggerDaily access from a vendor connection: the client and the rate rule."""

from __future__ import annotations

from batchjobs.vendors.optimove_daily.client import (
    OptimoveDailyClient,
)
from dashboard.models import VendorConnection
from dashboard.runs.operations import (
    RateRule,
    account_key,
    cached_client,
    connection_fingerprint,
)

DAILY_RATE_WINDOW_SECONDS = 600


def optimove_daily_client(
    connection: VendorConnection, secrets: dict[str, str]
) -> OptimoveDailyClient:
    """The TriggerDaily client for a connection (its options may select the /current/ route)."""
    options = connection.options
    return cached_client(
        ("optimove_daily", *connection_fingerprint(connection, secrets)),
        lambda: OptimoveDailyClient(
            connection.base_url,
            api_key=secrets["api_key"],
            use_current_route=bool(options.get("use_current_route", False)),
            real_seconds_per_wait_second=float(options.get("real_seconds_per_wait_second", 1.0)),
        ),
    )


def daily_rate_rule(connection: VendorConnection, secrets: dict[str, str]) -> RateRule:
    """Optimove allows one TriggerDaily request per tenant per 10 minutes, across every worker."""
    return RateRule(
        key=account_key("optimove_daily", connection.base_url, secrets.get("api_key", "")),
        limit=1,
        period_seconds=DAILY_RATE_WINDOW_SECONDS,
        window=True,
    )
