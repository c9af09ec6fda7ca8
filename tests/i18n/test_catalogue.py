"""The Russian catalogue is complete: no message left untranslated or fuzzy, every placeholder
kept (issue 26, item 4)."""

from __future__ import annotations

import re
from pathlib import Path

import polib
import pytest

LOCALE = Path(__file__).resolve().parents[2] / "locale"
CATALOGUES = sorted(LOCALE.glob("*/LC_MESSAGES/*.po"))
PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sd]|%[sd]|\{[a-z_]*\}")


def test_there_is_a_russian_catalogue_for_python_templates_and_scripts():
    names = {path.relative_to(LOCALE).as_posix() for path in CATALOGUES}
    assert {"ru/LC_MESSAGES/django.po", "ru/LC_MESSAGES/djangojs.po"} <= names


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda path: path.relative_to(LOCALE).as_posix())
def test_every_message_is_translated_and_none_is_fuzzy(path):
    catalogue = polib.pofile(str(path))
    untranslated = [entry.msgid for entry in catalogue.untranslated_entries()]
    fuzzy = [entry.msgid for entry in catalogue.fuzzy_entries()]
    assert untranslated == [], "no translation for:\n" + "\n".join(untranslated)
    assert fuzzy == [], "fuzzy (a guess, not used):\n" + "\n".join(fuzzy)
    assert not catalogue.metadata_is_fuzzy


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda path: path.relative_to(LOCALE).as_posix())
def test_every_translation_keeps_its_placeholders(path):
    wrong = []
    for entry in polib.pofile(str(path)).translated_entries():
        wanted = sorted(PLACEHOLDER.findall(entry.msgid_plural or entry.msgid))
        translations = entry.msgstr_plural.values() if entry.msgid_plural else [entry.msgstr]
        for text in translations:
            found = sorted(PLACEHOLDER.findall(text))
            # A plural form may leave the count out ("один запуск"), never add or rename one.
            if found != wanted and not (entry.msgid_plural and set(found) <= set(wanted)):
                wrong.append(f"{entry.msgid!r}: {wanted} became {found}")
    assert wrong == []
