"""A user agent as people name their device: "Chrome on macOS", "Safari on iPhone"."""

from __future__ import annotations

from django.utils.translation import gettext as _

# ua-parser's family names where people say something else.
_SYSTEM_NAMES = {"Mac OS X": "macOS", "Chrome OS": "ChromeOS"}
_BROWSER_NAMES = {
    "HeadlessChrome": "Chrome (headless)",
    "Chrome Mobile": "Chrome",
    "Mobile Safari": "Safari",
    "Firefox Mobile": "Firefox",
}
_SPECIFIC_DEVICES = ("iPhone", "iPad")
NAME_MAX_CHARS = 60


def device_parts(user_agent: str) -> tuple[str, str]:
    """(browser, system) of `user_agent` by their usual names ("Firefox", "Windows"); "" for
    what cannot be read. Called once per login: ua-parser compiles its rules on the first call
    in a process (~0.3 s), well under a millisecond after."""
    if not user_agent.strip():
        return "", ""
    # Imported here: the rules are large and only a login needs them (tests/ops footprint).
    from ua_parser import parse

    parsed = parse(user_agent[:500]).with_defaults()
    browser = _BROWSER_NAMES.get(parsed.user_agent.family, parsed.user_agent.family)
    system = _SYSTEM_NAMES.get(parsed.os.family, parsed.os.family)
    if parsed.device.family in _SPECIFIC_DEVICES:
        system = parsed.device.family
    return (
        "" if browser == "Other" else browser[:NAME_MAX_CHARS],
        "" if system == "Other" else system[:NAME_MAX_CHARS],
    )


def device_label(browser: str, system: str) -> str:
    """The device in words, in the reader's language: "Chrome on macOS", "Unknown device"."""
    if browser and system:
        return _("%(browser)s on %(system)s") % {"browser": browser, "system": system}
    if browser:
        return browser
    if system:
        return _("A browser on %(system)s") % {"system": system}
    return _("Unknown device")
