"""A vendor's answer as rows a person reads ("Contacts enqueued: 1,204"), not raw JSON.

The exact answer stays on the run page (under "Exact answer") and in the attempt evidence;
these rows are what people look at first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.contrib.humanize.templatetags.humanize import intcomma

# Deeper structures than this are shown as compact text: a result is a summary, not a tree.
MAX_DEPTH = 2
# A list longer than this shows its first items and how many more there are.
MAX_LIST_ITEMS = 10

# Abbreviations that read wrong when only their first letter is capitalised.
UPPERCASE_WORDS = {"id": "ID", "ids": "IDs", "url": "URL", "utc": "UTC", "api": "API"}


@dataclass(frozen=True)
class ResultField:
    """One labelled value of a vendor's answer."""

    label: str
    value: str


def humanize_key(key: str) -> str:
    """'contacts_enqueued' or 'contactsEnqueued' -> 'Contacts enqueued'; 'job_id' -> 'Job ID'."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", str(key)).replace("_", " ").replace("-", " ")
    words = [UPPERCASE_WORDS.get(word.lower(), word.lower()) for word in spaced.split()]
    if not words:
        return str(key)
    first = words[0]
    words[0] = first if first in UPPERCASE_WORDS.values() else first[:1].upper() + first[1:]
    return " ".join(words)


def _scalar_text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return intcomma(value)
    if isinstance(value, float):
        return intcomma(round(value, 3))
    return str(value)


def _compact_text(value: Any) -> str:
    if isinstance(value, dict):
        return "; ".join(
            f"{humanize_key(key)}: {_compact_text(item)}" for key, item in value.items()
        )
    if isinstance(value, list):
        shown = ", ".join(_compact_text(item) for item in value[:MAX_LIST_ITEMS])
        more = len(value) - MAX_LIST_ITEMS
        return f"{shown} … and {intcomma(more)} more" if more > 0 else shown
    return _scalar_text(value)


def result_fields(result: Any, *, prefix: str = "", depth: int = 0) -> list[ResultField]:
    """The rows of a run's result: one per field, nested objects as 'Parent · child' rows."""
    if not isinstance(result, dict):
        return [ResultField(prefix or "Answer", _compact_text(result))] if result else []
    rows: list[ResultField] = []
    for key, value in result.items():
        label = f"{prefix} · {humanize_key(key)}" if prefix else humanize_key(key)
        if isinstance(value, dict) and value and depth + 1 < MAX_DEPTH:
            rows.extend(result_fields(value, prefix=label, depth=depth + 1))
        elif isinstance(value, list) and not value:
            rows.append(ResultField(label, "none"))
        elif isinstance(value, dict) and not value:
            rows.append(ResultField(label, "—"))
        else:
            rows.append(ResultField(label, _compact_text(value)))
    return rows
