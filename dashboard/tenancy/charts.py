"""Charts drawn on the server as SVG: no JavaScript, no CDN, nothing for the CSP to allow.

Colours come from CSS classes (static/css/app.css), so the SVG carries no style attribute.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

from django.utils.formats import number_format
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext, gettext_lazy, ngettext

# Stacking order, bottom up; anything else is "open".
STACKED_STATES = ("succeeded", "failed", "cancelled", "open")
STATE_LABELS = {
    "succeeded": gettext_lazy("Succeeded"),
    "failed": gettext_lazy("Failed"),
    "cancelled": gettext_lazy("Cancelled"),
    "open": gettext_lazy("Open / unknown"),
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
            ngettext(
                "Runs per day over the last %(days)s day, by state",
                "Runs per day over the last %(days)s days, by state",
                days,
            )
            % {"days": days},
        ),
        format_html(
            '<text x="0" y="12" class="axis">{}</text><text x="0" y="{}" class="axis">0</text>',
            peak,
            height - bottom,
        ),
    ]
    # A bar per day and state (120 over 30 days): the labels translated and escaped once, the
    # rest numbers and constants, so plain formatting is safe and a tenth of format_html's cost.
    labels = {state: conditional_escape(STATE_LABELS[state]) for state in STACKED_STATES}
    bar_width = _n(max(bar - 2, 1))
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
                f'<rect x="{_n(x + 1)}" y="{_n(y)}" width="{bar_width}" height="{_n(h)}" '
                f'class="bar {state}"><title>{day.isoformat()} {labels[state]}: {int(value)}'
                "</title></rect>"
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
            gettext("Average send latency and error rate per vendor connection, last 30 days"),
        )
    ]
    for index, row in enumerate(rows):
        y = index * line + 4
        latency = row["latency_ms"] or 0
        milliseconds = number_format(round(latency), force_grouping=True)
        error_rate = number_format(row["error_rate"] * 100, decimal_pos=1) + "%"
        parts.append(
            format_html(
                '<text x="0" y="{}" class="axis">{}</text>'
                '<rect x="200" y="{}" width="{}" height="10" class="bar latency">'
                "<title>{}</title></rect>"
                '<text x="{}" y="{}" class="axis">{}</text>'
                '<rect x="200" y="{}" width="{}" height="10" class="bar failed">'
                "<title>{}</title></rect>"
                '<text x="{}" y="{}" class="axis">{}</text>',
                y + 16,
                str(row["run__connection__name"])[:28],
                y,
                _n(300 * latency / slowest),
                ngettext(
                    "%(latency)s ms average over %(sends)s send",
                    "%(latency)s ms average over %(sends)s sends",
                    row["attempts"],
                )
                % {
                    "latency": milliseconds,
                    "sends": number_format(row["attempts"], force_grouping=True),
                },
                _n(204 + 300 * latency / slowest),
                y + 9,
                gettext("%(latency)s ms") % {"latency": milliseconds},
                y + 13,
                _n(300 * row["error_rate"]),
                gettext("%(rate)s of sends failed") % {"rate": error_rate},
                _n(204 + 300 * row["error_rate"]),
                y + 22,
                gettext("%(rate)s errors") % {"rate": error_rate},
            )
        )
    parts.append(mark_safe("</svg>"))
    return mark_safe("".join(str(part) for part in parts))  # noqa: S308 - every part escaped
