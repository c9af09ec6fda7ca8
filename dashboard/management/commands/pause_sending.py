from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from dashboard.management.commands._common import acting_as, error_text, tenant_by_slug
from dashboard.pauses import services


class Command(BaseCommand):
    help = (
        "Pause sending for a tenant, or one of its connections: queued runs stay queued, "
        "scheduled fires wait, new triggers are refused; calls already at the vendor finish. "
        "--as must be an operator or admin of the tenant (audited with the reason)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("tenant", help="The tenant's slug.")
        parser.add_argument("--reason", required=True, help="Why sending stops (audited).")
        parser.add_argument("--connection", help="Pause only this connection (its name).")
        parser.add_argument(
            "--as", dest="acting_as", required=True, help="An operator or admin of the tenant."
        )

    def handle(self, *args, **options) -> None:
        tenant = tenant_by_slug(options["tenant"])
        actor, _membership = acting_as(options["acting_as"], tenant, "pause_sending")
        try:
            connection = services.connection_for_pause(
                tenant=tenant, name_or_id=options["connection"]
            )
            pause = services.sending_pause(
                actor=actor, tenant=tenant, connection=connection, reason=options["reason"]
            )
        except (ValidationError, PermissionDenied) as error:
            raise CommandError(f"Not paused: {error_text(error)}") from None
        self.stdout.write(
            self.style.SUCCESS(f"Sending paused for {pause.scope_label}: {pause.reason}")
        )
