from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from dashboard.management.commands._common import acting_user
from dashboard.tenancy import services


class Command(BaseCommand):
    help = (
        "Lift a login lockout (django-axes) and audit it: the name at one address with --ip, "
        "else the name everywhere. --as must be a superuser or an admin of a tenant."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", required=True, help="The locked-out user name.")
        parser.add_argument(
            "--ip",
            dest="ip_address",
            help="Only the lockout of the name at this address; without it, every lockout of "
            "the name (from this address and from anywhere).",
        )
        parser.add_argument(
            "--as",
            dest="acting_as",
            required=True,
            help="Who lifts it: a superuser or an admin of some tenant (audited with the OS user).",
        )

    def handle(self, *args, **options) -> None:
        actor = acting_user(options["acting_as"], "unlock_login")
        try:
            unlock = services.login_unlock(
                actor=actor, username=options["username"], ip_address=options["ip_address"]
            )
        except (PermissionDenied, ValidationError) as error:
            text = "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)
            raise CommandError(f"Nothing unlocked: {text}") from None
        where = f" at {unlock.ip_address}" if unlock.ip_address else ""
        if unlock.records_removed:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Unlocked {unlock.username}{where}: {unlock.records_removed} lockout "
                    "record(s) removed (audited)."
                )
            )
        else:
            self.stdout.write(
                f"{unlock.username}{where} had no failed log-ins on record: nothing was locked "
                "(audited)."
            )
        if unlock.still_locked_everywhere:
            self.stdout.write(
                self.style.WARNING(
                    f"{unlock.username} is still locked from every address (too many failures "
                    "from several): run it again without --ip to lift that too."
                )
            )
