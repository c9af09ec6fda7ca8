from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from dashboard.management.commands._common import acting_user
from dashboard.mfa import services


class Command(BaseCommand):
    help = (
        "Remove every second factor of a person who lost theirs (apps, passkeys, recovery "
        "codes), with a reason, audited. --as must be a superuser or an admin of a tenant the "
        "person belongs to."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", required=True, help="Whose factors to remove.")
        parser.add_argument("--reason", required=True, help="Why (audited).")
        parser.add_argument(
            "--as",
            dest="acting_as",
            required=True,
            help="Who resets it: a superuser or an admin of the person's tenant (audited with "
            "the OS user).",
        )

    def handle(self, *args, **options) -> None:
        actor = acting_user(options["acting_as"], "reset_second_factor")
        try:
            removed = services.second_factor_reset(
                actor=actor, username=options["username"], reason=options["reason"]
            )
        except (PermissionDenied, ValidationError) as error:
            text = "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)
            raise CommandError(f"Nothing reset: {text}") from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Removed {removed} second factor(s) and the recovery codes of "
                f"{options['username']} (audited). They log in with their password and set up "
                "a new one on Account security."
            )
        )
