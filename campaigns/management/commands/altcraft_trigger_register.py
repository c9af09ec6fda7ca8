"""Register an Altcraft trigger campaign of one of the tenant's Altcraft connections, as the
Altcraft page does (operators and admins)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from campaigns.altcraft_launches import services
from campaigns.altcraft_launches.forms import MATCHING_CHOICES, TriggerRegisterForm
from campaigns.management.commands._altcraft_cli import membership_for
from dashboard.models import Permission, VendorConnection, VendorKind

COMMAND = "altcraft_trigger_register"
# The form's field names as this command's options.
OPTION_OF = {
    "connection": "--connection",
    "trigger_id": "--trigger-id",
    "name": "--name",
    "default_matching": "--matching",
    "default_field_name": "--field-name",
    "resource_id": "--resource-id",
    "content_fields": "--content-field",
}


class Command(BaseCommand):
    help = (
        "Register an Altcraft trigger campaign so that launches can use it, as a member (same "
        "form checks and role as the Altcraft page: operators and admins)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--trigger-id", required=True, help="Altcraft's trigger campaign ID.")
        parser.add_argument("--name", required=True, help="Its name in TriggerDesk.")
        parser.add_argument("--as", dest="username", required=True, help="Act as this member.")
        parser.add_argument("--tenant", help="Tenant slug (needed when the user has several).")
        parser.add_argument("--connection", help="The Altcraft connection's name, if several.")
        parser.add_argument(
            "--matching",
            default="email",
            help="Default matching: " + ", ".join(value for value, _ in MATCHING_CHOICES) + ".",
        )
        parser.add_argument("--field-name", default="", help="The field for custom matching.")
        parser.add_argument("--resource-id", default="", help="Resource ID (email/phone).")
        parser.add_argument(
            "--content-field",
            action="append",
            default=[],
            help="A name its templates use as {apicontent.name} (repeat for several).",
        )

    def handle(self, *args, **options) -> None:
        actor, membership = membership_for(options["username"], options["tenant"], COMMAND)
        if not membership.can(Permission.APPROVE):
            raise CommandError(
                f"{options['username']} ({membership.get_role_display()}) cannot register "
                "Altcraft triggers: operators and admins do."
            )
        tenant = membership.tenant
        connections = VendorConnection.objects.filter(
            tenant=tenant, kind=VendorKind.ALTCRAFT, is_active=True
        )
        if options["connection"]:
            connections = connections.filter(name=options["connection"])
        found = list(connections)
        if not found:
            raise CommandError(
                f"{tenant.name} has no active Altcraft connection"
                + (f" named {options['connection']!r}." if options["connection"] else ".")
            )
        if len(found) > 1:
            raise CommandError("Several Altcraft connections: name one with --connection.")
        form = TriggerRegisterForm(
            {
                "connection": found[0].pk,
                "trigger_id": options["trigger_id"],
                "name": options["name"],
                "default_matching": options["matching"],
                "default_field_name": options["field_name"],
                "resource_id": options["resource_id"],
                "content_fields": ",".join(options["content_field"]),
            },
            tenant=tenant,
        )
        if not form.is_valid():
            raise CommandError(
                "Nothing was registered:\n"
                + "\n".join(
                    f"  {OPTION_OF.get(name, name)}: {' '.join(errors)}"
                    for name, errors in form.errors.items()
                )
            )
        data = form.cleaned_data
        try:
            trigger = services.trigger_register(
                actor=actor,
                tenant=tenant,
                connection=data["connection"],
                trigger_id=data["trigger_id"],
                name=data["name"],
                default_matching=data["default_matching"],
                default_field_name=data["default_field_name"],
                resource_id=data["resource_id"],
                content_fields=data["content_fields"],
            )
        except ValidationError as error:
            raise CommandError("Nothing was registered: " + "; ".join(error.messages)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Registered {trigger} on {trigger.connection.name} (#{trigger.pk})."
            )
        )
