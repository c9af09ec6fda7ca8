"""The status badges' tones (static/css/app.css) keep WCAG AA contrast for their small text:
4.5:1 between each tone's colour and its background."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CSS = (Path(__file__).resolve().parent.parent / "static" / "css" / "app.css").read_text()


def _variables() -> dict[str, str]:
    root = re.search(r":root \{([^}]*)\}", CSS).group(1)
    return dict(re.findall(r"--([\w-]+):(#[0-9a-fA-F]{6})", root))


def _luminance(colour: str) -> float:
    channels = [int(colour[index : index + 2], 16) / 255 for index in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(foreground: str, background: str) -> float:
    lighter, darker = sorted([_luminance(foreground), _luminance(background)], reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


@pytest.mark.parametrize("tone", ["good", "warn", "bad"])
def test_each_badge_tone_has_aa_contrast(tone):
    rule = re.search(
        rf"\.badge\.{tone} \{{ background:(#[0-9a-fA-F]{{6}}); color:var\(--{tone}\)", CSS
    )
    assert rule, f".badge.{tone} is not where this test looks for it"
    assert _contrast(_variables()[tone], rule.group(1)) >= 4.5


@pytest.mark.parametrize("tone", ["good", "warn", "bad"])
def test_a_run_state_in_a_tone_colour_on_the_plain_badge_has_aa_contrast(tone):
    plain = re.search(r"\.badge \{[^}]*background:(#[0-9a-fA-F]{6})", CSS).group(1)
    assert _contrast(_variables()[tone], plain) >= 4.5
