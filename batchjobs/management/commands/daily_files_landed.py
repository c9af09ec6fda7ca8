from datetime import date

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from batchjobs import services
from batchjobs.models import FilesLanded
from dashboard.audit.trail import Actor
from dashboard.clock import utc_today
from dashboard.management.commands._common import (
    acting_as,
    command_label,
    error_text,
    tenant_by_slug,
)
from dashboard.runs.services import RunActionError


class Command(BaseCommand):
    help = (
        "Signal that all files of a UTC date have landed (the daily trigger's gate), as a member "
        "(--as) or as a named pipeline (--pipeline)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("tenant", help="Tenant slug")
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--as", dest="username", help="Act as this member.")
        who.add_argument("--pipeline", help="The name of the pipeline giving the signal.")
        parser.add_argument("--date", help="UTC date, YYYY-MM-DD (default: today, UTC).")
        parser.add_argument("--note", default="")

    def handle(self, *args, **options) -> None:
        tenant = tenant_by_slug(options["tenant"])
        try:
            utc_date = date.fromisoformat(options["date"]) if options["date"] else utc_today()
        except ValueError:
            raise CommandError("--date must be YYYY-MM-DD.") from None
        if options["username"]:
            actor, _ = acting_as(options["username"], tenant, "daily_files_landed")
            source = FilesLanded.Source.PERSON
        else:
            actor = Actor.system(
                command_label("daily_files_landed", acting_as=f"pipeline:{options['pipeline']}")
            )
            source = FilesLanded.Source.PIPELINE
        try:
            signal = services.files_landed_give(
                actor=actor, tenant=tenant, utc_date=utc_date, source=source, note=options["note"]
            )
        except (ValidationError, RunActionError) as error:
            raise CommandError(f"Not recorded: {error_text(error)}") from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Files landed for {signal.utc_date:%Y-%m-%d} (UTC): signalled by "
                f"{signal.given_by_label} at {signal.given_at:%H:%M:%S} UTC."
            )
        )
