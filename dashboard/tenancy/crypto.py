"""Encryption of vendor credentials at rest.

Values are stored as `fernet$v1$<token>`: self-describing, so a later scheme can coexist. The keys
come from the dedicated `CREDENTIALS_KEYS` setting (not derived from SECRET_KEY), newest first:
MultiFernet encrypts with the first and decrypts with any, so a new key is put first and
`manage.py rotate_credentials_key` re-encrypts everything under it: the vendor secrets, the
webhook signing secrets and the stored Altcraft lists (campaigns/altcraft_launches/storage.py).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.views.decorators.debug import sensitive_variables

if TYPE_CHECKING:
    from cryptography.fernet import Fernet, MultiFernet

# `cryptography` (8 MB resident) is imported by the first call that encrypts or decrypts, not by
# every process that imports this module through the services: a page, an export, verify_audit.

PREFIX = "fernet$v1$"


class CredentialDecryptionError(Exception):
    """A stored credential cannot be decrypted with any configured key."""


@cache
def _multi_fernet(keys: tuple[str, ...]) -> MultiFernet:
    from cryptography.fernet import Fernet, MultiFernet

    if not keys:
        raise ImproperlyConfigured(
            "CREDENTIALS_KEYS is not set: TriggerDesk needs at least one Fernet key to encrypt "
            'vendor credentials. Generate one with `python -c "from cryptography.fernet import '
            'Fernet; print(Fernet.generate_key().decode())"` and set CREDENTIALS_KEYS (or '
            "CREDENTIALS_KEYS_FILE)."
        )
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError as error:
        raise ImproperlyConfigured(
            "CREDENTIALS_KEYS holds a value that is not a Fernet key (32 url-safe base64 bytes)."
        ) from error


def credentials_cipher() -> MultiFernet:
    """The MultiFernet for the configured keys (first key encrypts)."""
    return _multi_fernet(tuple(settings.CREDENTIALS_KEYS))


@cache
def _fernet(key: str) -> Fernet:
    from cryptography.fernet import Fernet

    return Fernet(key)


def is_under_newest_key(token: bytes) -> bool:
    """Whether a Fernet token was made with the first key of CREDENTIALS_KEYS: its signature
    checks out under that key (nothing is decrypted)."""
    from cryptography.fernet import InvalidToken

    credentials_cipher()  # the same clear error as everywhere when the keys are missing or bad
    try:
        _fernet(settings.CREDENTIALS_KEYS[0]).extract_timestamp(token)
    except InvalidToken:
        return False
    return True


@sensitive_variables()
def encrypt_secret(plaintext: str) -> str:
    """Encrypt a secret under the newest key into a self-describing stored value."""
    token = credentials_cipher().encrypt(plaintext.encode("utf-8"))
    return PREFIX + token.decode("ascii")


@sensitive_variables()
def decrypt_secret(stored: str) -> str:
    """Decrypt a stored value; raises CredentialDecryptionError if no key fits."""
    from cryptography.fernet import InvalidToken

    if not stored.startswith(PREFIX):
        raise CredentialDecryptionError("Stored credential has an unknown format.")
    try:
        return credentials_cipher().decrypt(stored.removeprefix(PREFIX).encode("ascii")).decode()
    except InvalidToken:
        raise CredentialDecryptionError(
            "Stored credential cannot be decrypted with any key in CREDENTIALS_KEYS."
        ) from None


def check_secret(stored: str) -> None:
    """Raise CredentialDecryptionError unless a key in CREDENTIALS_KEYS fits the stored value
    (its signature is checked; nothing is decrypted)."""
    from cryptography.fernet import InvalidToken

    if not stored.startswith(PREFIX):
        raise CredentialDecryptionError("Stored credential has an unknown format.")
    try:
        credentials_cipher().extract_timestamp(stored.removeprefix(PREFIX).encode("ascii"))
    except InvalidToken:
        raise CredentialDecryptionError(
            "Stored credential cannot be decrypted with any key in CREDENTIALS_KEYS."
        ) from None


def reencrypt_secret(stored: str) -> str:
    """The same secret re-encrypted under the newest key (MultiFernet.rotate)."""
    from cryptography.fernet import InvalidToken

    if not stored.startswith(PREFIX):
        raise CredentialDecryptionError("Stored credential has an unknown format.")
    try:
        token = credentials_cipher().rotate(stored.removeprefix(PREFIX).encode("ascii"))
    except InvalidToken:
        raise CredentialDecryptionError(
            "Stored credential cannot be decrypted with any key in CREDENTIALS_KEYS."
        ) from None
    return PREFIX + token.decode("ascii")
