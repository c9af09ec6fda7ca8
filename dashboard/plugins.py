"""How feature apps plug into the core.

Each app's AppConfig names what it contributes as dotted strings (its run operation modules, API
router modules, sandboxes, key-rotation hooks, demo data, run lookups). The core reads them here
and imports each one on first use, never at start, so a process that never needs a contribution
(a page, verify_audit, an export) does not load every vendor client, django-ninja or cryptography
with them (tests/ops/test_process_footprint.py). The core therefore imports no feature app.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.apps import apps
from django.utils.module_loading import import_string


def declared(attribute: str) -> list[tuple[str, Any]]:
    """Every app's raw `AppConfig.<attribute>` entries, in INSTALLED_APPS order, as (app label,
    entry) pairs; nothing is imported. A tuple/list attribute gives one pair per item, a dict one
    pair per (key, value) item with the value being (key, value)."""
    entries: list[tuple[str, Any]] = []
    for config in apps.get_app_configs():
        value = getattr(config, attribute, None)
        if not value:
            continue
        if isinstance(value, dict):
            entries.extend((config.label, item) for item in value.items())
        else:
            entries.extend((config.label, item) for item in value)
    return entries


def contributed_modules(attribute: str) -> list[Any]:
    """The modules every app names in `AppConfig.<attribute>`, imported now (INSTALLED_APPS order)."""
    return [import_module(path) for _label, path in declared(attribute)]


def contributions(attribute: str) -> list[Any]:
    """The objects every app names in `AppConfig.<attribute>` (dotted paths to functions or
    classes), imported now, in INSTALLED_APPS order."""
    return [import_string(path) for _label, path in declared(attribute)]


def named_contributions(attribute: str) -> dict[str, Any]:
    """`AppConfig.<attribute>` dicts of name -> dotted path, merged over every app, each path
    imported now. A name two apps both use is a configuration error."""
    found: dict[str, Any] = {}
    for label, (name, path) in declared(attribute):
        if name in found:
            raise ValueError(f"{attribute}: {name!r} is contributed twice (again by {label}).")
        found[name] = import_string(path)
    return found
