"""The Preferences page's form: language and time zone, each "as my browser says" by default."""

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from dashboard.preferences import selectors


def _language_choices():
    return [("", _("As my browser says")), *settings.LANGUAGES]


def _time_zone_choices():
    return [("", _("My browser's time zone")), *((n, n) for n in selectors.time_zone_names())]


class PreferencesForm(forms.Form):
    language = forms.ChoiceField(
        label=_("Language"),
        required=False,
        choices=_language_choices,
        help_text=_("The language of every page, email and error message you get."),
    )
    time_zone = forms.ChoiceField(
        label=_("Time zone"),
        required=False,
        choices=_time_zone_choices,
        error_messages={
            "invalid_choice": _(
                "Choose a time zone from the list (an IANA name such as Europe/Moscow)."
            )
        },
        help_text=_("Times are shown in this zone, with UTC beside them."),
    )
