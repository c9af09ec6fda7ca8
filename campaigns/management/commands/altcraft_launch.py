from django.core.management.base import BaseCommand, CommandError

from campaigns.altcraft_launches import services
from campaigns.altcraft_launches.models import LaunchKind
from campaigns.management.commands import _altcraft_cli as cli

COMMAND = "altcraft_launch"


class Command(BaseCommand):
    help = (
        "Bulk-launch an Altcraft trigger campaign for a CSV/XLSX list, as a member (same rules as "
        "the page): reads and checks the file, prints the preview, then sends it in requests "
        "under the body limit once confirmed (--yes in scripts; --dry-run sends nothing). "
        "--column names the column whose values are sent (default: the one named like the "
        "matching kind); the other columns are ignored. Rows with no value in it are sent only "
        "without them, with --skip-empty. "
        "Also --approve LAUNCH --sha256 HASH (operators) and --retry LAUNCH."
    )

    def add_arguments(self, parser) -> None:
        cli.add_common_arguments(parser)
        parser.add_argument(
            "--column", help="The header of the column whose values are sent (a CRM export)."
        )
        parser.add_argument(
            "--skip-empty",
            action="store_true",
            help="Send the rows that have a value in the column; skip those that have none.",
        )

    def handle(self, *args, **options) -> None:
        if cli.approve_or_retry(self, options, COMMAND):
            return
        actor, membership = cli.membership_for(options["username"], options["tenant"], COMMAND)
        if not options["file"]:
            raise CommandError("Name the list with --file.")
        trigger = cli.find_trigger(membership.tenant, options)
        parameters = {
            "matching": options["matching"] or trigger.default_matching,
            "field_name": options["field_name"],
            "content": cli.json_option(options, "content"),
            "custom_data": cli.json_option(options, "custom_data"),
            "attach": cli.attachments(options["attach"]),
            "skip_triggers": True if options["skip_triggers"] else None,
        }
        launch = cli.create_from_file(
            actor, trigger, kind=LaunchKind.START_BATCH, path=options["file"], parameters=parameters
        )
        launch = services.launch_prepare(actor=actor, launch=launch, column=options["column"])
        cli.print_preview(self, launch)
        cli.confirm_and_send(self, actor, launch, options)
