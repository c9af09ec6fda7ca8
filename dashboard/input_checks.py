"""Text the database cannot store, found before it reaches a query.

PostgreSQL refuses a NUL character in any text (and `\\u0000` in jsonb), and a lone UTF-16
surrogate (U+D800 to U+DFFF) cannot be encoded as UTF-8 at all: either one, passed on to a query,
is a 500. One check, used by the request middleware (query strings, form values, cookies,
headers), by form fields that parse JSON, and by services that take nested values from commands.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError

UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")


def unstorable_reason(text: str) -> str:
    """Why `text` cannot be stored, in plain words; empty when it can."""
    match = UNSTORABLE_CHARACTER.search(text)
    if match is None:
        return ""
    if match.group() == "\x00":
        return "a NUL character (0x00)"
    return "a broken Unicode character (a lone surrogate)"


def nested_unstorable_reason(value: Any, *, depth: int = 0) -> str:
    """unstorable_reason for every string (keys included) inside a JSON-like value."""
    if depth > 100:
        return "nesting deeper than 100 levels"
    if isinstance(value, str):
        return unstorable_reason(value)
    if isinstance(value, dict):
        for key, item in value.items():
            reason = nested_unstorable_reason(key, depth=depth + 1) or nested_unstorable_reason(
                item, depth=depth + 1
            )
            if reason:
                return reason
    if isinstance(value, (list, tuple)):
        for item in value:
            reason = nested_unstorable_reason(item, depth=depth + 1)
            if reason:
                return reason
    return ""


def check_storable(value: Any) -> Any:
    """Return `value`, or raise ValidationError when some text inside it cannot be stored."""
    reason = nested_unstorable_reason(value)
    if reason:
        raise ValidationError(f"This value contains {reason}, which cannot be stored.")
    return value
