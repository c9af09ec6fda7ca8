"""A connection's decrypted secrets, for a vendor client only: each stored value decrypted once
per process (workers read them for every send)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from dashboard.models import VendorConnection
from dashboard.tenancy.crypto import decrypt_secret

logger = logging.getLogger(__name__)

_MAX_DECRYPTED = 256
_decrypted: dict[tuple[tuple[str, ...], str], str] = {}
_decrypted_lock = threading.Lock()


@sensitive_variables()
def connection_secrets(connection: VendorConnection, *, read_with: Any = None) -> dict[str, str]:
    """The decrypted secrets of a connection, for a vendor client only; never render or log them.

    Each stored value is decrypted once per process, keyed by the stored ciphertext and the
    configured keys, so a changed secret or key is a new entry and an unreadable one still raises
    CredentialDecryptionError. Process memory only; never logged. `read_with`: a row a selector
    fetched with the connection's API key (dashboard.tenancy.selectors.with_api_key); its key is
    used instead of a query for the secrets.
    """
    if read_with is not None and hasattr(read_with, "api_key_encrypted"):
        encrypted = read_with.api_key_encrypted
        return {"api_key": _decrypted_once(encrypted)} if encrypted is not None else {}
    return {
        name: _decrypted_once(stored)
        for name, stored in connection.secrets.values_list("name", "encrypted_value")
    }


def _decrypted_once(stored: str) -> str:
    keys = tuple(settings.CREDENTIALS_KEYS)
    value = _decrypted.get((keys, stored))
    if value is None:
        value = decrypt_secret(stored)
        with _decrypted_lock:
            if len(_decrypted) >= _MAX_DECRYPTED:
                _decrypted.pop(next(iter(_decrypted)))
            _decrypted[(keys, stored)] = value
    return value
