"""The demo tenant's Altcraft triggers (make demo; setup_demo calls it through
AppConfig.demo_data)."""

from __future__ import annotations

from typing import TextIO

from django.contrib.auth import get_user_model

from campaigns.altcraft_launches.models import AltcraftTrigger
from campaigns.altcraft_launches.services import trigger_register
from dashboard.audit.trail import Actor
from dashboard.management.commands._common import command_label
from dashboard.models import Tenant, VendorConnection


def register_demo_triggers(tenant: Tenant, stdout: TextIO) -> None:
    """The Altcraft sandbox's active trigger campaigns, for bulk launches and imports."""
    connection = VendorConnection.objects.get(tenant=tenant, name="Altcraft (sandbox)")
    admin = Actor(
        user=get_user_model().objects.get(username="ada"),
        label=command_label("setup_demo", acting_as="ada"),
    )
    for trigger_id, name, content_fields, resource_id in (
        (8, "Abandoned cart", ["page"], None),
        (96, "Registration form", ["page"], 21),
    ):
        if AltcraftTrigger.objects.filter(tenant=tenant, trigger_id=trigger_id).exists():
            continue
        trigger_register(
            actor=admin,
            tenant=tenant,
            connection=connection,
            trigger_id=trigger_id,
            name=name,
            resource_id=resource_id,
            content_fields=content_fields,
        )
