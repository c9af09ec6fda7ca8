"""The campaign, batch job and run pages in Russian (issue 26, item 4: "both languages render
every page without missing translations"): each answers in Russian, says so (<html lang="ru">),
shows no English sentence the catalogue translates, and formats its numbers the Russian way.

The pages and their data are the browser tests' (tests/dashboard/test_browser.py); the admin
chose Russian on their Preferences page while their browser asks for English.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import polib
import pytest

from dashboard.audit.trail import Actor
from dashboard.preferences.services import preferences_update
from dashboard.runs.models import Operation
from tests.dashboard.test_browser import every_page, phone_data

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("compiled_translations")]

CATALOGUE = Path(__file__).resolve().parents[2] / "locale" / "ru" / "LC_MESSAGES" / "django.po"
AREAS = ("/campaigns/", "/batch/", "/runs/")
PLACEHOLDER = re.compile(r"%\([a-z_]+\)[0-9]*[sd]|<[^>]+>")
READ_ATTRIBUTES = {"title", "placeholder", "aria-label", "alt", "data-confirm"}
# Code, and the names of people's own objects in a select (a connection "Optimove EU (…)").
HIDDEN = {"script", "style", "code", "pre", "textarea", "select"}


class VisibleText(HTMLParser):
    """The text a person reads in a page's <main> (the menu around it is not these areas'):
    text nodes and the attributes read out or shown."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hidden = 0
        self.in_main = False
        self.parts: list[str] = []
        self.language = ""

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "html":
            self.language = dict(attrs).get("lang") or ""
        self.in_main = self.in_main or tag == "main"
        if tag in HIDDEN:
            self.hidden += 1
        if self.in_main:
            self.parts += [value for name, value in attrs if name in READ_ATTRIBUTES and value]

    def handle_endtag(self, tag) -> None:
        if tag in HIDDEN and self.hidden:
            self.hidden -= 1
        if tag == "main":
            self.in_main = False

    def handle_data(self, data) -> None:
        if self.in_main and not self.hidden and data.strip():
            self.parts.append(data)


# Written into a run when it is requested (its approval reasons name the operation), in the words
# of that moment: a record, like a comment, not a label of the page.
RECORDED = {str(label) for _value, label in Operation.choices}


def english_sentences() -> dict[str, re.Pattern]:
    """The fixed words of each translated message (what stays between its placeholders), as
    patterns: any of them on a Russian page is a missing translation."""
    patterns = {}
    for entry in polib.pofile(str(CATALOGUE)).translated_entries():
        if entry.msgstr == entry.msgid or entry.msgid in RECORDED:
            continue
        for msgid in filter(None, (entry.msgid, entry.msgid_plural)):
            for piece in PLACEHOLDER.split(msgid):
                piece = " ".join(piece.split()).strip(" .,:;()→←…")
                # Whole phrases only: a short word may be a vendor's or a person's own.
                # A phrase of a recorded operation name ("event generator") proves nothing.
                if any(piece.lower() in recorded.lower() for recorded in RECORDED):
                    continue
                if len(piece) >= 12 and " " in piece:
                    patterns[piece] = re.compile(r"(?<!\w)" + re.escape(piece) + r"(?!\w)")
    return patterns


def read(response) -> VisibleText:
    page = VisibleText()
    content = response.content.decode()
    page.feed(content if "<main" in content else f"<main>{content}</main>")
    page.close()
    return page


def test_every_campaign_batch_and_run_page_speaks_russian(
    team, sandboxes, sandbox_connection, settings, tmp_path
):
    data = phone_data(team, sandbox_connection, settings, tmp_path)
    preferences_update(actor=Actor(user=team.admin.user), language="ru", time_zone="")
    admin = team.client_for("admin")
    paths = [path for path in every_page(data) if any(area in path for area in AREAS)]
    # The batch job rows load after the page (htmx); the run list's filtered fragment too.
    paths += [f"/t/acme/batch/jobs/{data['job'].pk}/row/"]
    fragments = {paths[-1]}
    assert len(paths) >= 18
    patterns = english_sentences()

    problems = {}
    for path in paths:
        response = admin.get(path, HTTP_ACCEPT_LANGUAGE="en")
        if response.status_code != 200:
            problems[path] = f"answered {response.status_code}"
            continue
        page = read(response)
        if path not in fragments and page.language != "ru":
            problems[path] = f'<html lang="{page.language}">'
            continue
        text = " ".join(" ".join(page.parts).split())
        # Each English phrase with what surrounds it, to find it on the page.
        english = [
            text[max(0, found.start() - 40) : found.end() + 40]
            for pattern in patterns.values()
            if (found := pattern.search(text))
        ]
        if english:
            problems[path] = f"English left: {english}"
    assert problems == {}, "\n".join(f"{path}: {problem}" for path, problem in problems.items())


def test_russian_pages_group_thousands_with_a_space(team, client, settings):
    from tests.factories import RunFactory

    RunFactory(tenant=team.tenant, requested_by=team.marketer.user, audience_size=1234567)
    preferences_update(actor=Actor(user=team.admin.user), language="ru", time_zone="")
    page = team.client_for("admin").get("/t/acme/runs/").content.decode()
    # Django's Russian format: a no-break space between the groups, the noun in its plural form.
    assert "1\xa0234\xa0567 получателей" in page
    preferences_update(actor=Actor(user=team.admin.user), language="en", time_zone="")
    page = team.client_for("admin").get("/t/acme/runs/").content.decode()
    assert "1,234,567 recipients" in page
