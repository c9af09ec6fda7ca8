"""Charts drawn on the server as SVG: no JavaScript, no CDN, nothing for the CSP to allow.

Colours come from CSS classes (static/css/app.css), so the SVG carries no style attribute.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

# Stacking order, bottom up; anything else is "open".
STACKED_STATES = ("succeeded", "failed", "cancelled", "open")
STATE_LABELS = {
    "succeeded": "Succeeded",
    "failed": "Failed",
    "cancelled": "Cancelled",
    "open": "Open / unknown",
}


def _n(value: float) -> str:
    return f"{value:.1f}"


def runs_per_day_svg(activity: dict[str, Any], *, kind: str | None = None) -> SafeString:
    """Stacked bars: runs per UTC day by final state (optionally of one vendor kind)."""
    days = activity["days"]
    since = activity["since"]
    counts: dict[Any, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in activity["rows"]:
        if kind and row["connection__kind"] != kind:
            continue
        state = row["state"] if row["state"] in STACKED_STATES else "open"
        counts[row["day"]][state] += row["count"]
    width, height, left, bottom = 620, 180, 36, 20
    bar = (width - left) / days
    peak = max([sum(day.values()) for day in counts.values()] or [0]) or 1
    scale = (height - bottom - 10) / peak
    parts = [
        format_html(
            '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}">',
            width,
            height + 22,
            f"Runs per day over the last {days} days, by state",
        ),
        format_html(
            '<text x="0" y="12" class="axis">{}</text><text x="0" y="{}" class="axis">0</text>',
            peak,
            height - bottom,
        ),
    ]
    for index in range(days):
        day = since + timedelta(days=index)
        x = left + index * bar
        y = height - bottom
        for state in STACKED_STATES:
            value = counts.get(day, {}).get(state, 0)
            if not value:
                continue
            h = value * scale
            y -= h
            parts.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="{}" class="bar {}">'
                    "<title>{} {}: {}</title></rect>",
                    _n(x + 1),
                    _n(y),
                    _n(max(bar - 2, 1)),
                    _n(h),
                    state,
                    day.isoformat(),
                    STATE_LABELS[state],
                    value,
                )
            )
        if index % 7 == 0:
            parts.append(
                format_html(
                    '<text x="{}" y="{}" class="axis">{}</text>',
                    _n(x),
                    height - 4,
                    day.strftime("%m-%d"),
                )
            )
    for position, state in enumerate(STACKED_STATES):
        parts.append(
            format_html(
                '<rect x="{}" y="{}" width="10" height="10" class="bar {}"></rect>'
                '<text x="{}" y="{}" class="axis">{}</text>',
                left + position * 140,
                height + 8,
                state,
                left + position * 140 + 14,
                height + 17,
                STATE_LABELS[state],
            )
        )
    parts.append(mark_safe("</svg>"))
    return mark_safe("".join(str(part) for part in parts))  # noqa: S308 - every part escaped


def vendor_health_svg(rows: list[dict[str, Any]]) -> SafeString:
    """Per connection: a bar for its average send latency and one for its error rate."""
    if not rows:
        return mark_safe("")
    width, line = 620, 34
    slowest = max((row["latency_ms"] or 0) for row in rows) or 1
    parts = [
        format_html(
            '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}">',
            width,
            line * len(rows) + 6,
            "Average send latency and error rate per vendor connection, last 30 days",
        )
    ]
    for index, row in enumerate(rows):
        y = index * line + 4
        latency = row["latency_ms"] or 0
        parts.append(
            format_html(
                '<text x="0" y="{}" class="axis">{}</text>'
                '<rect x="200" y="{}" width="{}" height="10" class="bar latency">'
                "<title>{} ms average over {} sends</title></rect>"
                '<text x="{}" y="{}" class="axis">{} ms</text>'
                '<rect x="200" y="{}" width="{}" height="10" class="bar failed">'
                "<title>{} of sends failed</title></rect>"
                '<text x="{}" y="{}" class="axis">{} errors</text>',
                y + 16,
                str(row["run__connection__name"])[:28],
                y,
                _n(300 * latency / slowest),
                f"{latency:.0f}",
                row["attempts"],
                _n(204 + 300 * latency / slowest),
                y + 9,
                f"{latency:.0f}",
                y + 13,
                _n(300 * row["error_rate"]),
                f"{row['error_rate']:.1%}",
                _n(204 + 300 * row["error_rate"]),
                y + 22,
                f"{row['error_rate']:.1%}",
            )
        )
    parts.append(mark_safe("</svg>"))
    return mark_safe("".join(str(part) for part in parts))  # noqa: S308 - every part escaped
