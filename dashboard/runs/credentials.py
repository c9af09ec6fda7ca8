"""Connection secrets for the workers, each stored value decrypted once per process."""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from dashboard.models import VendorConnection
from dashboard.tenancy.crypto import decrypt_secret

logger = logging.getLogger(__name__)

_MAX_DECRYPTED = 256
_decrypted: dict[tuple[tuple[str, ...], str], str] = {}
_decrypted_lock = threading.Lock()


@sensitive_variables()
def connection_secrets(connection: VendorConnection) -> dict[str, str]:
    """dashboard.tenancy.services.connection_secrets, each stored value decrypted once per process.

    Keyed by the stored ciphertext and the configured keys, so a changed secret or key is a new
    entry and an unreadable one still raises CredentialDecryptionError. Process memory only;
    never logged.
    """
    keys = tuple(settings.CREDENTIALS_KEYS)
    secrets: dict[str, str] = {}
    for name, stored in connection.secrets.values_list("name", "encrypted_value"):
        value = _decrypted.get((keys, stored))
        if value is None:
            value = decrypt_secret(stored)
            with _decrypted_lock:
                if len(_decrypted) >= _MAX_DECRYPTED:
                    _decrypted.pop(next(iter(_decrypted)))
                _decrypted[(keys, stored)] = value
        secrets[name] = value
    return secrets
