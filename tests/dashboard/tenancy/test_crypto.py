import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection as db_connection

from dashboard.models import ConnectionSecret
from dashboard.tenancy.credentials import connection_secrets
from dashboard.tenancy.crypto import CredentialDecryptionError, decrypt_secret, encrypt_secret
from tests.factories import VendorConnectionFactory

pytestmark = pytest.mark.django_db


def test_round_trip_and_self_describing_value():
    stored = encrypt_secret("s3cr3t-api-key")
    assert stored.startswith("fernet$v1$")
    assert "s3cr3t" not in stored
    assert decrypt_secret(stored) == "s3cr3t-api-key"


def test_no_plaintext_in_any_database_column():
    VendorConnectionFactory(secret_values={"api_key": "PLAINTEXT-NEEDLE-123456"})
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT encrypted_value, hint FROM dashboard_connectionsecret")
        rows = cursor.fetchall()
    assert rows
    for encrypted_value, hint in rows:
        assert "PLAINTEXT-NEEDLE" not in encrypted_value
        assert hint == "3456"


def test_unknown_key_cannot_decrypt(settings):
    stored = encrypt_secret("value")
    settings.CREDENTIALS_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CredentialDecryptionError):
        decrypt_secret(stored)


def test_rotation_reencrypts_every_row_under_the_new_key(settings, tmp_path):
    settings.ALTCRAFT_UPLOAD_DIR = tmp_path / "uploads"  # it re-encrypts stored files too
    old_keys = list(settings.CREDENTIALS_KEYS)
    first = VendorConnectionFactory(secret_values={"api_key": "first-key-value-AAAA"})
    second = VendorConnectionFactory(secret_values={"api_key": "second-key-value-BBBB"})
    before = dict(ConnectionSecret.objects.values_list("pk", "encrypted_value"))

    new_key = Fernet.generate_key().decode()
    settings.CREDENTIALS_KEYS = [new_key, *old_keys]
    call_command("rotate_credentials_key")

    after = dict(ConnectionSecret.objects.values_list("pk", "encrypted_value"))
    assert all(before[pk] != after[pk] for pk in before)
    # Only the new key is needed from now on.
    settings.CREDENTIALS_KEYS = [new_key]
    assert connection_secrets(first) == {"api_key": "first-key-value-AAAA"}
    assert connection_secrets(second) == {"api_key": "second-key-value-BBBB"}


def test_app_refuses_to_start_without_credentials_keys():
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        env={
            "PATH": "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "dashboard.project.settings",
            "SECRET_KEY": "x",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "CREDENTIALS_KEYS is not set" in result.stderr
