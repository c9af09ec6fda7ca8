"""Template filters shared by the pages."""

from __future__ import annotations

import json
from typing import Any, TypedDict

from django import template

register = template.Library()

MAX_VALUE_CHARS = 300


class Change(TypedDict):
    field: str
    old: str
    new: str
    value: str
    is_change: bool


def _plain(value: Any) -> str:
    """One value as a person reads it: no Python reprs, no quotes around plain strings."""
    if value is None or value in ("", {}, []):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        text = value
    elif isinstance(value, int | float):
        text = str(value)
    else:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    if len(text) > MAX_VALUE_CHARS:
        return f"{text[:MAX_VALUE_CHARS]}…"
    return text


def _is_from_to(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"from", "to"}


@register.filter
def audit_changes(summary: Any) -> list[Change]:
    """An audit row's summary as lines of "field: old → new" (a change) or "field: value".

    Summaries come in three shapes: a state or role change at the top ({"from", "to", ...}),
    a diff of fields ({"name": {"from", "to"}}), and plain facts ({"user": "mia"}).
    """
    if not isinstance(summary, dict):
        return [] if summary in (None, "", {}) else [_line("", _plain(summary))]
    lines: list[Change] = []
    top_change = "from" in summary and "to" in summary
    if top_change:
        lines.append(_change("", summary["from"], summary["to"]))
    for key, value in summary.items():
        if top_change and key in ("from", "to"):
            continue
        if _is_from_to(value):
            lines.append(_change(str(key), value["from"], value["to"]))
        else:
            lines.append(_line(str(key).replace("_", " "), _plain(value)))
    return lines


def _change(field: str, old: Any, new: Any) -> Change:
    return {
        "field": field.replace("_", " "),
        "old": _plain(old),
        "new": _plain(new),
        "value": "",
        "is_change": True,
    }


def _line(field: str, value: str) -> Change:
    return {"field": field, "old": "", "new": "", "value": value, "is_change": False}
