"""The colours of our style sheets keep WCAG AA contrast for their text (4.5:1, the small-text
threshold: badges, banners, messages and buttons are all small text): each rule that sets both
a text colour and a background, and each text colour on the surfaces it is used on.

axe-core checks the pages as rendered (tests/dashboard/test_browser.py); this test names the
pair that fails without a browser, and covers states a page test may not show (every badge
tone, the offline banner, each message level)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parent.parent / "static" / "css"
APP_CSS = (STATIC / "app.css").read_text()
STYLE_SHEETS = {name: (STATIC / name).read_text() for name in ("app.css", "api_docs.css")}
AA = 4.5
HEX = re.compile(r"#(?:[0-9a-fA-F]{3}){1,2}")


def _variables() -> dict[str, str]:
    root = re.search(r":root \{([^}]*)\}", APP_CSS).group(1)
    return dict(re.findall(r"--([\w-]+):(#[0-9a-fA-F]{6})", root))


VARIABLES = _variables()


def _colour(value: str) -> str | None:
    """A declaration's value as #rrggbb, or None when it is not one plain colour."""
    value = value.strip()
    variable = re.fullmatch(r"var\(--([\w-]+)\)", value)
    if variable:
        return VARIABLES.get(variable.group(1))
    if not HEX.fullmatch(value):
        return None
    if len(value) == 4:  # #rgb
        value = "#" + "".join(digit * 2 for digit in value[1:])
    return value.lower()


def _rules(css: str) -> list[tuple[str, dict[str, str]]]:
    """(selector, {property: value}) of each plain rule, those inside @media blocks included."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.DOTALL)
    rules = []
    for selector, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        declarations = {}
        for declaration in body.split(";"):
            name, _, value = declaration.partition(":")
            if value:
                declarations[name.strip()] = value.strip()
        rules.append((" ".join(selector.split()), declarations))
    return rules


def _luminance(colour: str) -> float:
    channels = [int(colour[index : index + 2], 16) / 255 for index in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(foreground: str, background: str) -> float:
    lighter, darker = sorted([_luminance(foreground), _luminance(background)], reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


# Rules whose background is not behind text a person must read: disabled controls (WCAG exempts
# them), the chart's bars (no text on them) and htmx's indicator.
NOT_TEXT = re.compile(r":disabled|svg\.chart|htmx")


def _pairs() -> list[tuple[str, str, str, str]]:
    """(style sheet, selector, text colour, background) of every rule setting a background; a
    rule of app.css without its own text colour has the button's white (buttons) or the body's."""
    pairs = []
    for sheet, css in STYLE_SHEETS.items():
        for selector, declarations in _rules(css):
            background = _colour(
                declarations.get("background-color", declarations.get("background", ""))
            )
            if background is None or NOT_TEXT.search(selector):
                continue
            colour = _colour(declarations.get("color", ""))
            if colour is None and sheet == "app.css":
                button = re.match(r"(button|\.button)\b", selector)
                colour = "#ffffff" if button else VARIABLES["fg"]
            if colour is not None:
                pairs.append((sheet, selector, colour, background))
    return pairs


PAIRS = _pairs()


def test_the_rules_are_found():
    selectors = {selector for _, selector, _, _ in PAIRS}
    for expected in (".badge", ".badge.bad", ".badge.good", ".badge.warn", ".offline-banner"):
        assert expected in selectors
    assert ".message.error" in selectors and ".steps li.current" in selectors
    assert any("opblock-summary-method" in selector for selector in selectors)


@pytest.mark.parametrize(
    ("sheet", "selector", "colour", "background"), PAIRS, ids=[pair[1] for pair in PAIRS]
)
def test_each_rule_with_a_background_has_aa_contrast(sheet, selector, colour, background):
    assert _contrast(colour, background) >= AA, f"{sheet} {selector}: {colour} on {background}"


# Text colours set without a background, on each surface they appear on.
SURFACES = {
    "page": VARIABLES["bg"],
    "card": "#ffffff",
    "warning card": "#fffaf0",
    "explanation": "#f5f7ff",
    "plain badge": "#eef0f4",
}
TEXT_ON_SURFACES = [
    (name, VARIABLES[name], surface)
    for name in ("fg", "muted", "accent", "bad", "good", "warn")
    for surface in ("page", "card", "warning card", "explanation")
] + [
    # A run state coloured by its tone inside a plain badge.
    (name, VARIABLES[name], "plain badge")
    for name in ("bad", "good", "warn", "muted-on-grey")
]


@pytest.mark.parametrize(
    ("name", "colour", "surface"),
    TEXT_ON_SURFACES,
    ids=[f"{name} on {surface}" for name, _, surface in TEXT_ON_SURFACES],
)
def test_each_text_colour_has_aa_contrast_on_its_surfaces(name, colour, surface):
    assert _contrast(colour, SURFACES[surface]) >= AA, f"--{name} {colour} on the {surface}"
