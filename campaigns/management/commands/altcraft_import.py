import json

from django.core.management.base import BaseCommand, CommandError

from campaigns.altcraft_launches import services
from campaigns.altcraft_launches.models import LaunchKind
from campaigns.management.commands import _altcraft_cli as cli

COMMAND = "altcraft_import"


class Command(BaseCommand):
    help = (
        "Import profiles from a CSV/XLSX file into Altcraft, then launch a trigger campaign (one "
        "task per request, polled to its result). Columns map with --map 'Column=field:email' "
        "'Mobile=phone_subscription:20' 'Notes=ignore', or the trigger's remembered mapping. "
        "Same preview, confirmation, --dry-run, --approve and --retry as altcraft_launch."
    )

    def add_arguments(self, parser) -> None:
        cli.add_common_arguments(parser)
        parser.add_argument("--map", action="append", default=[], metavar="COLUMN=TARGET")
        parser.add_argument("--mapping-file", help="A JSON mapping {'columns': {...}}.")
        parser.add_argument("--skip-invalid-subscriptions", action="store_true")
        parser.add_argument("--detect-geo", action="store_true")
        parser.add_argument("--timeout-minutes", type=int, help="Task timeout, in minutes.")

    def handle(self, *args, **options) -> None:
        if cli.approve_or_retry(self, options, COMMAND):
            return
        actor, membership = cli.membership_for(options["username"], options["tenant"], COMMAND)
        if not options["file"]:
            raise CommandError("Name the profiles file with --file.")
        trigger = cli.find_trigger(membership.tenant, options)
        mapping = self._mapping(options, trigger)
        timeout = None
        if options["timeout_minutes"] is not None:
            timeout = {"days": 0, "hours": 0, "minutes": options["timeout_minutes"]}
        parameters = {
            "matching": options["matching"] or trigger.default_matching,
            "field_name": options["field_name"],
            "content": cli.json_option(options, "content"),
            "custom_data": cli.json_option(options, "custom_data"),
            "attach": cli.attachments(options["attach"]),
            "skip_triggers": True if options["skip_triggers"] else None,
            "skip_invalid_subscriptions": True if options["skip_invalid_subscriptions"] else None,
            "detect_geo": True if options["detect_geo"] else None,
            "timeout": timeout,
        }
        launch = cli.create_from_file(
            actor, trigger, kind=LaunchKind.IMPORT, path=options["file"], parameters=parameters
        )
        launch = services.launch_prepare(actor=actor, launch=launch, mapping=mapping)
        cli.print_preview(self, launch)
        cli.confirm_and_send(self, actor, launch, options)

    def _mapping(self, options, trigger) -> dict:
        if options["mapping_file"]:
            try:
                with open(options["mapping_file"], encoding="utf-8") as file:
                    return json.load(file)
            except (OSError, ValueError) as error:
                raise CommandError(f"--mapping-file: {error}") from None
        if not options["map"]:
            if not trigger.import_mapping:
                raise CommandError("No mapping: pass --map COLUMN=TARGET for every column.")
            return trigger.import_mapping
        columns = {}
        for entry in options["map"]:
            column, _, target = entry.partition("=")
            kind, _, detail = target.partition(":")
            if not column or kind not in (
                "field",
                "email_subscription",
                "phone_subscription",
                "ignore",
            ):
                raise CommandError(
                    f"--map {entry!r}: use COLUMN=field:<name>, COLUMN=email_subscription[:<resource>], "
                    "COLUMN=phone_subscription[:<resource>] or COLUMN=ignore."
                )
            value = {"to": kind}
            if kind == "field":
                value["name"] = detail
            elif detail:
                if not detail.isdigit():
                    raise CommandError(f"--map {entry!r}: the resource ID must be a number.")
                value["resource_id"] = int(detail)
            columns[column] = value
        return {"columns": columns}
