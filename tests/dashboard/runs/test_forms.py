"""The run list's filter form: its selects, built in Python, are the markup Django's own widget
templates give, whatever is selected or wrong."""

from __future__ import annotations

import pytest
from django import forms
from django.test.html import parse_html

from dashboard.runs.forms import PlainSelect, RunFilterForm
from tests.factories import VendorConnectionFactory

pytestmark = pytest.mark.django_db

SELECTS = ("state", "operation", "connection", "requester", "approver")


@pytest.mark.parametrize(
    "data",
    [
        None,
        {"state": "failed", "operation": "altcraft_start_batch"},
        {"requester": "PERSON", "approver": "PERSON", "connection": "CONNECTION"},
        # Not one of the choices: the select carries the error's aria attributes.
        {"connection": "999999", "state": "no-such-state", "requester": "x"},
    ],
)
def test_filter_selects_render_as_djangos_select_does(team, data):
    connection = VendorConnectionFactory(tenant=team.tenant)
    if data:
        person = team.operator.user
        replace = {"PERSON": str(person.pk), "CONNECTION": str(connection.pk)}
        data = {key: replace.get(value, value) for key, value in data.items()}
    form = RunFilterForm(data, tenant=team.tenant)
    form.filters()
    for name in SELECTS:
        assert isinstance(form.fields[name].widget, PlainSelect)
        ours = str(form[name])
        form.fields[name].widget.__class__ = forms.Select
        assert parse_html(ours) == parse_html(str(form[name])), name


def test_an_option_label_is_escaped(team):
    VendorConnectionFactory(tenant=team.tenant, name='<b>"Main" & co</b>')
    html = str(RunFilterForm(None, tenant=team.tenant)["connection"])
    assert "&lt;b&gt;&quot;Main&quot; &amp; co&lt;/b&gt;" in html
    assert "<b>" not in html
