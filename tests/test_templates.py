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
        # A JSON data block (the API docs' settings) is never run: the policy allows it.
        assert "src=" in attributes or 'type="application/json"' in attributes, "inline <script>"


def test_confirmations_are_data_attributes():
    sources = {p.name: p.read_text() for p in ALL_TEMPLATES}
    assert sources["run_detail.html"].count("data-confirm=") == 6
    assert "data-confirm=" in sources["member_list.html"]
    assert "data-confirm=" in sources["batch_job_list.html"]


def test_the_script_uses_window_confirm_by_its_full_name():
    script = (TEMPLATES.parent / "static" / "js" / "app.js").read_text()
    assert "window.confirm(" in script
    assert re.search(r"(?<![.\w])confirm\(", script) is None


FORM = re.compile(r"<form\b[^>]*>.*?</form>", re.DOTALL)
TRANSLATED = re.compile(r'\{%\s*(?:translate|trans)\s+"([^"]*)"\s*%\}')

# Every irreversible or destructive action (issue: "confirm before every irreversible or
# destructive action"): the template, the URL name it posts to, the button's words.
DESTRUCTIVE_ACTIONS = [
    ("batchjobs/daily_trigger.html", "daily_trigger_approve", "Approve and trigger now"),
    ("batchjobs/daily_trigger.html", "daily_trigger_reject", "Reject"),
    ("batchjobs/daily_trigger.html", "daily_trigger_withdraw", "Withdraw request"),
    ("campaigns/schedule_list.html", "campaign_schedule_cancel", "Cancel"),
    ("api/token_list.html", "api_token_revoke", "Revoke"),
    ("api/token_list.html", "api_webhook_remove", "Remove webhook"),
    ("runs/run_detail.html", "run_approve", "Approve and send"),
    ("runs/run_detail.html", "run_reject", "Reject"),
    ("runs/run_detail.html", "run_cancel", "Cancel this run"),
    (
        "campaigns/altcraft/launch_detail.html",
        "altcraft_launch_approve",
        "Approve this file and send",
    ),
    ("campaigns/altcraft/launch_detail.html", "altcraft_launch_reject", "Reject"),
    ("dashboard/member_list.html", "member_remove", "Remove"),
]


@pytest.mark.parametrize(
    ("template", "url_name", "label"), DESTRUCTIVE_ACTIONS, ids=lambda v: str(v)
)
def test_every_destructive_action_asks_first(template, url_name, label):
    """The button that posts to url_name asks (app.js reads data-confirm on the submitting
    button or on its form): a button may post elsewhere through formaction, so both count."""
    source = (TEMPLATES / template).read_text()
    url = f"{{% url '{url_name}'"
    asking = []
    for form in FORM.findall(source):
        form_tag = form.split(">", 1)[0]
        for button in re.finditer(r"<button\b([^>]*)>(.*?)</button>", form, re.DOTALL):
            attributes, words = button.group(1), button.group(2).strip()
            # The button's English words, also when they are translated: {% translate "Revoke" %}.
            words = TRANSLATED.sub(r"\1", words)
            if words != label:
                continue
            posts_to = attributes if "formaction=" in attributes else form_tag
            if url in posts_to:
                asking.append("data-confirm=" in attributes or "data-confirm=" in form_tag)
    assert asking, f"no {label!r} button posting to {url_name} in {template}"
    assert all(asking), f"{label!r} ({url_name}) in {template} does not ask first"
