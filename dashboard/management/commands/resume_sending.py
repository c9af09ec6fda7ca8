from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from dashboard.management.commands._common import acting_as, error_text, tenant_by_slug
from dashboard.pauses import services


class Command(BaseCommand):
    help = (
        "Resume sending for a paused tenant, or one paused connection: the runs the pause held "
        "are sent, or cancelled first with --cancel-held. --as must be an operator or admin."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("tenant", help="The tenant's slug.")
        parser.add_argument("--connection", help="Resume only this connection (its name).")
        parser.add_argument(
            "--cancel-held",
            action="store_true",
            help="Cancel the held runs instead of sending them.",
        )
        parser.add_argument(
            "--as", dest="acting_as", required=True, help="An operator or admin of the tenant."
        )

    def handle(self, *args, **options) -> None:
        tenant = tenant_by_slug(options["tenant"])
        actor, _membership = acting_as(options["acting_as"], tenant, "resume_sending")
        try:
            connection = services.connection_for_pause(
                tenant=tenant, name_or_id=options["connection"]
            )
            resumed = services.sending_resume(
                actor=actor,
                tenant=tenant,
                connection=connection,
                cancel_held=options["cancel_held"],
            )
        except (ValidationError, PermissionDenied) as error:
            raise CommandError(f"Not resumed: {error_text(error)}") from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Sending resumed for {resumed.pause.scope_label}: {resumed.released} held "
                f"run(s) sent on, {resumed.cancelled} cancelled."
            )
        )
