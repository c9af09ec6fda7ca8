"""Text and JSON the database cannot store, found before it reaches a query.

PostgreSQL refuses a NUL character in any text (and `\\u0000` in jsonb), a lone UTF-16
surrogate (U+D800 to U+DFFF) cannot be encoded as UTF-8 at all, and jsonb has no Infinity or NaN
(Python's json reads `Infinity`, `NaN` and `1e999999` as such floats): any of them, passed on to a
query or to a vendor's body, is a 500. So is JSON nested so deep that reading, validating or
writing it exhausts Python's recursion limit. One check, used by the request middleware (query
strings, form values, cookies, headers), by every form field and API parser that reads JSON, and
by services that take nested values from commands.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")
# Deeper than any schema, context or options a person writes; shallow enough that every
# recursive reader of it (jsonschema, json.dumps, the form builder) stays far from Python's
# recursion limit.
MAX_JSON_DEPTH = 100
NOT_FINITE = gettext_lazy(
    "a number that is not finite (Infinity, NaN, or too large, such as 1e999999)"
)


def unstorable_reason(text: str) -> str:
    """Why `text` cannot be stored, in plain words; empty when it can."""
    match = UNSTORABLE_CHARACTER.search(text)
    if match is None:
        return ""
    if match.group() == "\x00":
        return _("a NUL character (0x00)")
    return _("a broken Unicode character (a lone surrogate)")


def nested_unstorable_reason(value: Any) -> str:
    """Why a JSON-like value cannot be stored (a string, key included, that cannot; a number
    that is not finite; nesting deeper than MAX_JSON_DEPTH), in plain words; empty when it can."""
    return unstorable_part(value)[0]


def unstorable_part(value: Any) -> tuple[str, str]:
    """(why, where): nested_unstorable_reason, and the top-level key of the object under which
    it was found ("" when the value is not an object or it is a key itself).

    Walks with its own stack, not by recursion, so that no depth of input can crash it."""
    pending: list[tuple[Any, int, str]] = [(value, 0, "")]
    while pending:
        item, depth, top = pending.pop()
        if depth > MAX_JSON_DEPTH:
            return _("nesting deeper than %(depth)s levels") % {"depth": MAX_JSON_DEPTH}, top
        if isinstance(item, str):
            reason = unstorable_reason(item)
            if reason:
                return reason, top
        elif isinstance(item, float):
            if not math.isfinite(item):
                return NOT_FINITE, top
        elif isinstance(item, dict):
            for key, child in item.items():
                where = top or (key if depth == 0 and isinstance(key, str) else "")
                pending.append((key, depth + 1, top))
                pending.append((child, depth + 1, where))
        elif isinstance(item, (list, tuple)):
            pending.extend((child, depth + 1, top) for child in item)
    return "", ""


def check_storable(value: Any) -> Any:
    """Return `value`, or raise ValidationError when some part of it cannot be stored."""
    reason = nested_unstorable_reason(value)
    if reason:
        raise ValidationError(
            _("This value contains %(reason)s, which cannot be stored.") % {"reason": reason}
        )
    return value


def parse_json_text(text: str | bytes, *, subject: str = "") -> Any:
    """The value of a JSON document that can be stored; ValidationError in plain words, starting
    with `subject`, when the text is not JSON or holds what cannot be stored (see
    nested_unstorable_reason).

    Never lets a reading error through: a document nested 100,000 deep (RecursionError) or a
    number of 5,000 digits (a ValueError that is not a JSONDecodeError) are refusals too."""
    subject = subject or _("The value")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValidationError(
            _("%(subject)s is not JSON (line %(line)s, column %(column)s): %(error)s.")
            % {"subject": subject, "line": error.lineno, "column": error.colno, "error": error.msg}
        ) from None
    except RecursionError:
        raise ValidationError(
            _("%(subject)s is nested deeper than %(depth)s levels, which cannot be stored.")
            % {"subject": subject, "depth": MAX_JSON_DEPTH}
        ) from None
    except UnicodeDecodeError:
        raise ValidationError(
            _("%(subject)s is not UTF-8 text (JSON).") % {"subject": subject}
        ) from None
    except ValueError:
        # Python refuses to read an integer of more than 4,300 digits.
        raise ValidationError(
            _("%(subject)s holds a number too long to read.") % {"subject": subject}
        ) from None
    reason = nested_unstorable_reason(value)
    if reason:
        raise ValidationError(
            _("%(subject)s contains %(reason)s, which cannot be stored.")
            % {"subject": subject, "reason": reason}
        )
    return value
