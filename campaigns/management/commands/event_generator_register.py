"""Register an Optimove event generator from its JSON document (the page's export, or a bare
JSON Schema with --external-id and --name), or update a registered one with --update."""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from campaigns.event_generators import selectors, services
from campaigns.management.commands._altcraft_cli import membership_for
from dashboard.models import Permission

COMMAND = "event_generator_register"


class Command(BaseCommand):
    help = (
        "Register an Optimove event generator from its JSON document (an export from its page, "
        "or a bare context schema with --external-id and --name), as a member (same rules and "
        "checks as the page). --update changes the registered generator with that id instead: "
        "name, topics and schema (a changed schema is a new version)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--file", required=True, help="The JSON document.")
        parser.add_argument("--as", dest="username", required=True, help="Act as this member.")
        parser.add_argument("--tenant", help="Tenant slug (needed when the user has several).")
        parser.add_argument(
            "--connection", help="The Optimove campaigns connection's name, if several."
        )
        parser.add_argument("--external-id", help="The Event Generator ID, if not in the file.")
        parser.add_argument("--name", help="Its name, if not in the file (or to change it).")
        parser.add_argument("--description", help="Its description (overrides the file's).")
        parser.add_argument("--comment", default="", help="Why: kept with the schema version.")
        parser.add_argument("--update", action="store_true", help="Update a registered one.")

    def handle(self, *args, **options) -> None:
        actor, membership = membership_for(options["username"], options["tenant"], COMMAND)
        if not membership.can(Permission.REQUEST):
            raise CommandError(
                f"{options['username']} ({membership.get_role_display()}) cannot register "
                "event generators."
            )
        tenant = membership.tenant
        try:
            text = Path(options["file"]).read_bytes()
        except OSError as error:
            raise CommandError(f"Cannot read {options['file']}: {error.strerror}.") from None
        try:
            document = services.parse_import(text)
            external_id = services.check_generator_id(
                options["external_id"] or document.get("external_id") or ""
            )
            name = options["name"] or document.get("name") or ""
            description = (
                options["description"]
                if options["description"] is not None
                else document.get("description", "")
            )
            if options["update"]:
                found = selectors.generator_find(tenants=[tenant], reference=external_id)
                if not found:
                    raise CommandError(f"{tenant.name} has no event generator {external_id}.")
                generator = found[0]
                version = services.generator_update(
                    actor=actor,
                    generator=generator,
                    name=name or generator.name,
                    description=description,
                    topics=document.get(
                        "topics", [(topic.key, topic.name) for topic in generator.topics.all()]
                    ),
                    schema=document["schema"],
                    comment=options["comment"],
                )
                self.stdout.write(
                    self.style.SUCCESS(
                        f"Updated {generator.name} ({generator.external_id}): "
                        + (
                            f"schema version {version.number}."
                            if version
                            else "the schema did not change."
                        )
                    )
                )
                return
            generator = services.generator_create(
                actor=actor,
                tenant=tenant,
                connection=self._connection(tenant, options["connection"]),
                external_id=external_id,
                name=name,
                description=description,
                topics=document.get("topics", []),
                schema=document["schema"],
                comment=options["comment"],
            )
        except ValidationError as error:
            nothing = "Nothing was changed" if options["update"] else "Nothing was registered"
            raise CommandError(f"{nothing}:\n" + _error_lines(error)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Registered {generator.name} ({generator.external_id}) in {tenant.name} with "
                f"{generator.topics.count()} topic(s), schema version 1 (#{generator.pk})."
            )
        )

    def _connection(self, tenant, name: str | None):
        connections = selectors.campaign_connections(tenant=tenant)
        if name:
            connections = connections.filter(name=name)
        found = list(connections)
        if not found:
            raise CommandError(
                f"{tenant.name} has no active Optimove campaigns connection"
                + (f" named {name!r}." if name else ".")
            )
        if len(found) > 1:
            raise CommandError(
                "Several Optimove campaigns connections: name one with --connection."
            )
        return found[0]


def _error_lines(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return "\n".join(
            f"  {name}: {' '.join(messages)}" for name, messages in error.message_dict.items()
        )
    return "\n".join(f"  {message}" for message in error.messages)
