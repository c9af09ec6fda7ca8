"""Every template is CSP-safe (issue 9, items 5 and 12): no inline event handlers, no inline
scripts or styles; behaviour lives in static/js/app.js behind data-* attributes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
ALL_TEMPLATES = sorted(TEMPLATES.rglob("*.html"))

INLINE_HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)
STYLE = re.compile(r"<style\b|\sstyle\s*=", re.IGNORECASE)
HX_ON = re.compile(r"\shx-on", re.IGNORECASE)


def test_there_are_templates():
    assert len(ALL_TEMPLATES) > 10


@pytest.mark.parametrize("path", ALL_TEMPLATES, ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_no_inline_script_handler_or_style(path):
    source = path.read_text()
    assert not INLINE_HANDLER.search(source), "inline on* handler"
    assert not HX_ON.search(source), "hx-on needs eval"
    assert not STYLE.search(source), "inline style"
    for attributes in SCRIPT_TAG.findall(source):
        assert "src=" in attributes, "inline <script>"


def test_confirmations_are_data_attributes():
    sources = {p.name: p.read_text() for p in ALL_TEMPLATES}
    assert sources["run_detail.html"].count("data-confirm=") == 4
    assert "data-confirm=" in sources["member_list.html"]
    assert "data-confirm=" in sources["batch_job_list.html"]


def test_the_script_uses_window_confirm_by_its_full_name():
    script = (TEMPLATES.parent / "static" / "js" / "app.js").read_text()
    assert "window.confirm(" in script
    assert re.search(r"(?<![.\w])confirm\(", script) is None
