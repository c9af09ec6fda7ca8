"""Every page in Russian (issue 26, item 4: "both languages render every page without missing
translations"): each page of the product answers in Russian, says so (<html lang="ru">), and
shows no English sentence that the catalogue translates.

The pages are the ones the browser tests visit (tests/dashboard/test_browser.py: every page a
signed-in admin reaches, the signed-out pages, the 403 a marketer sees), with the same data.
The signed-in admin chose Russian on their Preferences page while their browser asks for
English; the signed-out pages follow the browser's Accept-Language.
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
from tests.dashboard.test_browser import ERROR_PAGE, SIGNED_OUT_PAGES, every_page, phone_data

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("compiled_translations")]

CATALOGUE = Path(__file__).resolve().parents[2] / "locale" / "ru" / "LC_MESSAGES" / "django.po"
# Pages whose words are not translated yet (only their answer and their language are checked):
# none.
NOT_YET_TRANSLATED: tuple[str, ...] = ()
# Written into a run when it is requested (its approval reasons name the operation), in the words
# of that moment: a record, like a comment, not a label of the page.
RECORDED = {str(label) for _value, label in Operation.choices}
# The API's reference (Swagger UI and the OpenAPI descriptions) documents the API's own English
# names; it stays in English.
ENGLISH_ONLY = ("/api/v1/docs",)
PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sd]|<[^>]+>")
READ_ATTRIBUTES = {"title", "placeholder", "aria-label", "alt", "data-confirm"}


class VisibleText(HTMLParser):
    """The text a person reads on a page: text nodes and the attributes read out or shown."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hidden = 0
        self.parts: list[str] = []
        self.language = ""

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "html":
            self.language = dict(attrs).get("lang") or ""
        if tag in ("script", "style", "code", "pre"):
            self.hidden += 1
        self.parts += [value for name, value in attrs if name in READ_ATTRIBUTES and value]

    def handle_endtag(self, tag) -> None:
        if tag in ("script", "style", "code", "pre") and self.hidden:
            self.hidden -= 1

    def handle_data(self, data) -> None:
        if not self.hidden and data.strip():
            self.parts.append(data)


def english_sentences() -> dict[str, re.Pattern]:
    """The fixed words of each translated message (what stays between its placeholders), as
    patterns: any of them on a Russian page is a missing translation."""
    patterns = {}
    for entry in polib.pofile(str(CATALOGUE)).translated_entries():
        if entry.msgstr == entry.msgid or entry.msgid in RECORDED:
            continue
        for piece in PLACEHOLDER.split(entry.msgid):
            piece = " ".join(piece.split()).strip(" .,:;()→←")
            # Whole words of some length: "Run" alone may be a vendor's or a person's word.
            # A phrase of a recorded operation name ("event generator") proves nothing.
            if any(piece.lower() in recorded.lower() for recorded in RECORDED):
                continue
            if len(piece) >= 12 or (" " in piece and len(piece) >= 8):
                patterns[piece] = re.compile(r"(?<!\w)" + re.escape(piece) + r"(?!\w)")
    return patterns


def read(response) -> VisibleText:
    page = VisibleText()
    page.feed(response.content.decode())
    page.close()
    return page


def test_every_page_speaks_russian(team, sandboxes, sandbox_connection, settings, tmp_path, client):
    data = phone_data(team, sandbox_connection, settings, tmp_path)
    preferences_update(actor=Actor(user=team.admin.user), language="ru", time_zone="")
    patterns = english_sentences()
    visits = [
        (path, client, 200, {"HTTP_ACCEPT_LANGUAGE": "ru,en;q=0.5"}) for path in SIGNED_OUT_PAGES
    ]
    admin = team.client_for("admin")
    for path in every_page(data):
        visits.append(
            (path, admin, 404 if path == ERROR_PAGE else 200, {"HTTP_ACCEPT_LANGUAGE": "en"})
        )
    marketer = team.client_for("marketer")
    visits.append(("/t/acme/settings/", marketer, 403, {"HTTP_ACCEPT_LANGUAGE": "ru"}))

    problems = {}
    for path, client_, status, headers in visits:
        response = client_.get(path, **headers)
        if response.status_code != status:
            problems[path] = f"answered {response.status_code}"
            continue
        page = read(response)
        if path.startswith(ENGLISH_ONLY):
            continue
        if page.language != "ru":
            problems[path] = f'<html lang="{page.language}">'
            continue
        if any(part in path for part in NOT_YET_TRANSLATED):
            continue
        text = " ".join(" ".join(page.parts).split())
        english = [piece for piece, pattern in patterns.items() if pattern.search(text)]
        if english:
            problems[path] = f"English left: {english}"
    assert problems == {}, "\n".join(f"{path}: {problem}" for path, problem in problems.items())
