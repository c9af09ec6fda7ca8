"""Every template says what a person reads through {% translate %} / {% blocktranslate %}
(issue 26, item 4: "a test fails when a template has an untranslated string").

The template is cut into Django's tokens; what lies outside the translate tags and template
variables is read as HTML: its text and the attributes a person reads (title, placeholder,
aria-label, alt, data-confirm) must hold no words. Code (<code>, <pre>, <kbd>), numbers,
punctuation and a short list of names that stay as they are (brands, vendors, UTC) are fine.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.template.base import Lexer, TokenType

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"

# Directories whose templates are not translated yet: none.
NOT_YET_TRANSLATED: tuple[str, ...] = ()

# Names that read the same in every language.
KEEP_AS_IS = {
    "TriggerDesk",
    "Optimove",
    "Altcraft",
    "TalkifAI",
    "UTC",
    "API",
    "JSON",
    "CSV",
    "HTTP",
    "HTTPS",
    "URL",
    "ID",
    "IANA",
    "OpenAPI",
    "Swagger",
    "Bearer",
    "HMAC",
    "SHA",
    "ms",
}
READ_ATTRIBUTES = {"title", "placeholder", "aria-label", "alt", "data-confirm"}
CODE_ELEMENTS = {"code", "pre", "kbd", "samp", "script", "style"}
MARK = "\x00"  # where a template variable or tag stood
WORD = re.compile(r"[^\W\d_]{2,}")

TEMPLATE_FILES = sorted(
    path
    for path in TEMPLATES.rglob("*")
    if path.suffix in (".html", ".txt")
    and path.relative_to(TEMPLATES).parts[0] not in NOT_YET_TRANSLATED
)


# Tags whose quoted arguments are names, never text (a URL's name, a template's path...).
NAMING_TAGS = {
    "translate", "trans", "url", "static", "load", "extends", "include", "partialdef",
    "partial", "now", "block", "csrf_token", "get_current_language", "language",
}  # fmt: skip
LITERAL = re.compile(r"""(_\()?(["'])(.*?)\2""")


def literal_text(contents: str) -> list[str]:
    """The quoted texts of a tag or a variable that a person reads: {% with title="..." %},
    |default:"...". Identifiers compared in an {% if %} ("awaiting_approval") are code, and a
    literal inside _("...") is translated."""
    words = contents.split()
    if not words or words[0] in NAMING_TAGS:
        return []
    found = []
    for translated, _quote, text in LITERAL.findall(contents):
        if translated or not words_in(text):
            continue
        if " " in text or any(letter.isupper() for letter in text):
            found.append(text)
    return found


def outside_translation(source: str) -> str:
    """The template's own text, each tag and variable replaced by MARK, translated blocks and
    comments left out."""
    kept: list[str] = []
    skipping_until: str | None = None
    for token in Lexer(source).tokenize():
        if token.token_type == TokenType.BLOCK:
            name = token.contents.split()[0] if token.contents.split() else ""
            if skipping_until:
                if name == skipping_until:
                    skipping_until = None
                continue
            if name in ("blocktranslate", "blocktrans"):
                skipping_until = "end" + name
            elif name == "comment":
                skipping_until = "endcomment"
            # A space, not MARK: a tag may stand inside an element's tag (<details{% if %} open>).
            kept.append(" ")
            kept.extend(f"<q>{text}</q>" for text in literal_text(token.contents))
        elif skipping_until:
            continue
        elif token.token_type == TokenType.TEXT:
            kept.append(token.contents)
        elif token.token_type == TokenType.VAR:
            kept.append(MARK)
            kept.extend(f"<q>{text}</q>" for text in literal_text(token.contents))
    return "".join(kept)


def words_in(text: str) -> list[str]:
    """The words of `text` that would need a translation."""
    found = []
    for piece in text.split(MARK):
        for word in WORD.findall(piece):
            if word not in KEEP_AS_IS:
                found.append(word)
    return found


class TextFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open_code = 0
        self.untranslated: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        if tag in CODE_ELEMENTS:
            self.open_code += 1
        for name, value in attrs:
            if name in READ_ATTRIBUTES and value and words_in(value):
                self.untranslated.append(f'{tag}[{name}]="{value.replace(MARK, "{…}")}"')

    def handle_endtag(self, tag) -> None:
        if tag in CODE_ELEMENTS and self.open_code:
            self.open_code -= 1

    def handle_data(self, data) -> None:
        if not self.open_code and words_in(data):
            self.untranslated.append(" ".join(data.replace(MARK, " ").split()))


def untranslated_text(path: Path) -> list[str]:
    own_text = outside_translation(path.read_text())
    if path.suffix == ".txt":
        return [
            " ".join(line.replace(MARK, " ").split())
            for line in own_text.splitlines()
            if words_in(line)
        ]
    finder = TextFinder()
    finder.feed(own_text)
    finder.close()
    return finder.untranslated


def test_the_templates_are_found():
    assert len(TEMPLATE_FILES) > 20


@pytest.mark.parametrize("path", TEMPLATE_FILES, ids=lambda path: str(path.relative_to(TEMPLATES)))
def test_every_word_of_the_template_is_translated(path):
    found = untranslated_text(path)
    assert found == [], "text outside {% translate %}:\n" + "\n".join(found)


def test_the_checker_finds_text_and_read_attributes_and_skips_code():
    source = (
        '{% load i18n %}<p title="Hello there">{% translate "Fine" %} Plain words</p>'
        "<code>runs.state</code> {{ value }} UTC · 42 "
        "{% blocktranslate %}Fine {{ x }} too{% endblocktranslate %}"
        '<input placeholder="{% translate "Also fine" %}">'
        '{% with error_title="Not found" state="awaiting_approval" %}{{ x|default:"never" }}'
        '{% with note=_("Fine again") %}{% url "run list" %}'
    )
    finder = TextFinder()
    finder.feed(outside_translation(source))
    assert finder.untranslated == ['p[title]="Hello there"', "Plain words", "Not found"]
