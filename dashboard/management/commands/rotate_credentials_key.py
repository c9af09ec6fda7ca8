from django.core.management.base import BaseCommand, CommandError

from dashboard import services
from dashboard.crypto import CredentialDecryptionError
from dashboard.management.commands._common import command_actor


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored vendor secret under the first key of CREDENTIALS_KEYS. Put the new "
        "key first, keep the old ones after it, run this, then remove the old keys."
    )

    def handle(self, *args, **options) -> None:
        try:
            count = services.credentials_rotate_key(actor=command_actor("rotate_credentials_key"))
        except CredentialDecryptionError as error:
            raise CommandError(f"{error} Nothing was changed.") from None
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {count} secrets under the newest key."))
