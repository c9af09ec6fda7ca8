from django.core.management.base import BaseCommand, CommandError

from dashboard.management.commands._common import command_actor
from dashboard.tenancy import services
from dashboard.tenancy.crypto import CredentialDecryptionError


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class Command(BaseCommand):
    help = (
        "Re-encrypt everything encrypted under CREDENTIALS_KEYS with its first key: the vendor "
        "connections' secrets, the webhooks' signing secrets and the stored Altcraft lists and "
        "chunk files (ALTCRAFT_UPLOAD_DIR). Put the new key first, keep the old ones after it, "
        "restart the web process and the workers, run this, then remove the old keys once it "
        "reports no failed file."
    )

    def handle(self, *args, **options) -> None:
        try:
            rotation = services.credentials_rotate_key(
                actor=command_actor("rotate_credentials_key")
            )
        except CredentialDecryptionError as error:
            raise CommandError(f"{error} Nothing was changed.") from None
        skipped = [
            f"{rotation.files_current} already under it" if rotation.files_current else "",
            f"{rotation.files_gone} deleted meanwhile" if rotation.files_gone else "",
            f"{rotation.files_not_ours} not TriggerDesk files" if rotation.files_not_ours else "",
        ]
        skipped_text = "; ".join(part for part in skipped if part)
        message = (
            f"Re-encrypted under the newest key: {_plural(rotation.secrets, 'secret')}, "
            f"{_plural(rotation.webhook_secrets, 'webhook secret')}"
            + (
                f", {_plural(rotation.chat_webhook_urls, 'chat webhook URL')}"
                if rotation.chat_webhook_urls
                else ""
            )
            + " and "
            f"{_plural(rotation.files, 'stored file')}"
            + (f" ({skipped_text})." if skipped_text else ".")
        )
        if not rotation.files_failed:
            self.stdout.write(self.style.SUCCESS(message))
            return
        self.stdout.write(message)
        failed = "\n".join(
            f"  {name}: {reason}" for name, reason in sorted(rotation.files_failed.items())
        )
        raise CommandError(
            f"{_plural(len(rotation.files_failed), 'stored file')} could not be re-encrypted "
            f"(each is left as it was, in ALTCRAFT_UPLOAD_DIR):\n{failed}\n"
            "Keep the old keys until each of them is re-encrypted (run this again, with the key "
            "that wrote it in CREDENTIALS_KEYS) or deleted."
        )
