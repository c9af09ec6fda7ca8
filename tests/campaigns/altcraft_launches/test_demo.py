"""The demo tenant gets the Altcraft sandbox's trigger campaigns, idempotently."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from campaigns.altcraft_launches.models import AltcraftTrigger

pytestmark = pytest.mark.django_db


def test_setup_demo_registers_the_altcraft_triggers(settings, sandboxes) -> None:
    settings.SANDBOX_BASE_URL = sandboxes.server.url()
    call_command("setup_demo", stdout=StringIO())
    call_command("setup_demo", stdout=StringIO())

    triggers = AltcraftTrigger.objects.filter(tenant__slug="demo").order_by("trigger_id")
    assert [(t.trigger_id, t.name) for t in triggers] == [
        (8, "Abandoned cart"),
        (96, "Registration form"),
    ]
