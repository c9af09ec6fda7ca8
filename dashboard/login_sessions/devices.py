"""A user agent as people name their device: "Chrome on macOS", "Safari on iPhone"."""

from __future__ import annotations

from django.utils.translation import gettext as _

# ua-parser's family names where people say something else.
_OS_NAMES = {"Mac OS X": "macOS", "Chrome OS": "ChromeOS"}
_BROWSER_NAMES = {
    "HeadlessChrome": "Chrome (headless)",
    "Chrome Mobile": "Chrome",
    "Mobile Safari": "Safari",
    "Firefox Mobile": "Firefox",
}
_SPECIFIC_DEVICES = ("iPhone", "iPad")
DEVICE_MAX_CHARS = 120


def device_label(user_agent: str) -> str:
    """The browser and system of `user_agent`, in words ("Firefox on Windows"); "Unknown device"
    for an empty or unreadable one. Called once per login (parsing costs ~0.3 s the first time in
    a process, as ua-parser compiles its rules; well under a millisecond after)."""
    if not user_agent.strip():
        return _("Unknown device")
    # Imported here: the rules are large and only a login needs them (tests/ops footprint).
    from ua_parser import parse

    parsed = parse(user_agent[:500]).with_defaults()
    browser = _BROWSER_NAMES.get(parsed.user_agent.family, parsed.user_agent.family)
    system = _OS_NAMES.get(parsed.os.family, parsed.os.family)
    if parsed.device.family in _SPECIFIC_DEVICES:
        system = parsed.device.family
    if browser == "Other" and system == "Other":
        return _("Unknown device")
    if system == "Other":
        return browser[:DEVICE_MAX_CHARS]
    if browser == "Other":
        return _("A browser on %(system)s") % {"system": system}
    return (_("%(browser)s on %(system)s") % {"browser": browser, "system": system})[
        :DEVICE_MAX_CHARS
    ]
