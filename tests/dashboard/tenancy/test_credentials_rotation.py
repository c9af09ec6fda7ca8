"""`manage.py rotate_credentials_key` re-encrypts everything under CREDENTIALS_KEYS: after it, the
old key can be removed and every connection secret, webhook secret and stored Altcraft file
still reads back."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import struct
import uuid
from types import SimpleNamespace

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from campaigns.altcraft_launches import services as altcraft_services
from campaigns.altcraft_launches import storage
from campaigns.altcraft_launches.models import AltcraftChunk, AltcraftTrigger
from dashboard.api import webhooks
from dashboard.audit.trail import Actor
from dashboard.clock import utc_now
from dashboard.models import AuditEvent, ConnectionSecret
from dashboard.runs.states import RunState
from dashboard.tenancy.credentials import connection_secrets
from tests.factories import RunFactory, VendorConnectionFactory

pytestmark = pytest.mark.django_db

CONNECTION_SECRET = "connection-api-key-NEEDLE-1234"
UPLOAD = b"email\n" + b"".join(f"user{n:07d}@example.com\n".encode() for n in range(110_000))
RECORDS = [b"a" * 10, b"b" * 200, b"c" * 64, b"d"]


def new_key() -> str:
    return Fernet.generate_key().decode()


def segment_table(relative: str) -> list[tuple[int, int]]:
    """(offset, length) of every segment of a stored file, read from its length headers."""
    data = storage.absolute(relative).read_bytes()
    assert data.startswith(storage.MAGIC)
    table, offset = [], len(storage.MAGIC)
    while offset < len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        table.append((offset, 4 + length))
        offset += 4 + length
    return table


def hidden_files(upload_dir) -> list[str]:
    return [path.name for path in upload_dir.iterdir() if path.name.startswith(".")]


@pytest.fixture
def upload_dir(settings, tmp_path):
    settings.ALTCRAFT_UPLOAD_DIR = tmp_path / "uploads"
    return settings.ALTCRAFT_UPLOAD_DIR


@pytest.fixture
def old_key(settings, upload_dir) -> str:
    key = new_key()
    settings.CREDENTIALS_KEYS = [key]
    return key


def stored_launch(team):
    """A launch recording an upload (the real upload service) and a prepared chunk file written
    with write_record, its chunks' (offset, length) in the database."""
    connection = VendorConnectionFactory(tenant=team.tenant, kind="altcraft", name="Altcraft")
    trigger = AltcraftTrigger.objects.create(
        tenant=team.tenant, connection=connection, trigger_id=8, name="Cart"
    )
    upload = altcraft_services.upload_store(pieces=[UPLOAD[:1000], UPLOAD[1000:]])
    launch = altcraft_services.launch_create(
        actor=Actor(user=team.marketer.user),
        trigger=trigger,
        kind="start_batch",
        upload=upload,
        source_name="recipients.csv",
        parameters={"matching": "email"},
        idempotency_key=uuid.uuid4().hex,
    )
    writer = storage.EncryptedWriter(storage.new_path("chunks"), segment_bytes=64)
    chunks = []
    for number, record in enumerate(RECORDS, start=1):
        offset, length = writer.write_record(record)
        chunks.append(
            AltcraftChunk(
                launch=launch,
                number=number,
                first_row=number,
                last_row=number,
                item_count=1,
                body_bytes=len(record),
                offset=offset,
                length=length,
                sha256=hashlib.sha256(record).hexdigest(),
            )
        )
    writer.close()
    AltcraftChunk.objects.bulk_create(chunks)
    launch.chunks_path = writer.relative
    launch.save(update_fields=["chunks_path"])
    return launch


class CapturingSession:
    """Stands in for requests.Session in webhook_deliver: keeps what would be sent, answers 200."""

    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, str], bytes]] = []

    def post(self, url, *, data, headers, timeout, allow_redirects):
        self.sent.append((headers, data))
        return SimpleNamespace(status_code=200)


def assert_signed_with(secret: str, headers: dict[str, str], body: bytes) -> None:
    timestamp, digest = (
        part.split("=", 1)[1] for part in headers["TriggerDesk-Signature"].split(",")
    )
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    assert hmac.compare_digest(digest, expected.hexdigest())


def test_after_rotation_the_old_key_can_go_and_everything_still_reads(
    team, settings, old_key, upload_dir
):
    connection = VendorConnectionFactory(
        tenant=team.tenant, secret_values={"api_key": CONNECTION_SECRET}
    )
    webhook_secret = webhooks.webhook_set(
        actor=Actor(user=team.admin.user), tenant=team.tenant, url="http://127.0.0.1:9/hook"
    )
    RunFactory(
        tenant=team.tenant,
        connection__tenant=team.tenant,
        state=RunState.SUCCEEDED,
        finished_at=utc_now(),
    )
    (notification_id,) = webhooks.webhooks_dispatch()
    from dashboard.sso.models import SsoIdentity
    from dashboard.tenancy.crypto import decrypt_secret, encrypt_secret

    identity = SsoIdentity.objects.create(
        user=team.operator.user,
        issuer="http://127.0.0.1:9",
        subject="sub-oscar",
        encrypted_refresh_token=encrypt_secret("sso-refresh-token-value"),
    )
    launch = stored_launch(team)
    # Stored on disk but not (yet) recorded by any launch: an upload between its request and
    # launch_create. It must be re-encrypted too.
    unreferenced = altcraft_services.upload_store(pieces=[b"email\nlate@example.com\n"])
    files = (launch.upload_path, launch.chunks_path, unreferenced.path)
    sizes = {name: storage.absolute(name).stat().st_size for name in files}
    tables = {name: segment_table(name) for name in files}
    before = {name: storage.absolute(name).read_bytes() for name in files}
    assert len(tables[launch.upload_path]) == 3  # 2.5 MB: three 1 MiB segments
    assert len(tables[launch.chunks_path]) == 7  # 1 + 4 + 1 + 1 segments of 64 bytes

    key = new_key()
    settings.CREDENTIALS_KEYS = [key, old_key]
    out = io.StringIO()
    call_command("rotate_credentials_key", stdout=out)

    settings.CREDENTIALS_KEYS = [key]  # the old key is gone
    assert connection_secrets(connection) == {"api_key": CONNECTION_SECRET}
    identity.refresh_from_db()
    assert decrypt_secret(identity.encrypted_refresh_token) == "sso-refresh-token-value"
    session = CapturingSession()
    outcome = webhooks.webhook_deliver(notification_id=notification_id, session=session)
    assert outcome == "delivered"
    [(headers, body)] = session.sent
    assert_signed_with(webhook_secret, headers, body)
    assert b"".join(storage.iter_plaintext(launch.upload_path)) == UPLOAD
    assert b"".join(storage.iter_plaintext(unreferenced.path)) == b"email\nlate@example.com\n"
    for chunk, record in zip(launch.chunks.order_by("number"), RECORDS, strict=True):
        read = storage.read_record(launch.chunks_path, offset=chunk.offset, length=chunk.length)
        assert read == record
    for name in files:
        path = storage.absolute(name)
        assert path.read_bytes() != before[name]  # new tokens
        assert path.stat().st_size == sizes[name]
        assert segment_table(name) == tables[name]  # every segment where it was
        assert path.stat().st_mode & 0o777 == 0o600
    assert hidden_files(upload_dir) == []

    output = out.getvalue()
    # One secret each: the Optimove connection, the Altcraft one, the run's TalkifAI one.
    assert ConnectionSecret.objects.count() == 3
    assert "3 secrets, 1 webhook secret and 3 stored files." in output
    row = AuditEvent.objects.get(action="credentials.key_rotated")
    assert row.summary == {
        "connection_credentials": 3,
        "webhooks": 1,
        "sso_refresh": 1,
        "sso_refresh_dropped": 0,
        "chat_webhook_urls": 0,
        "files_reencrypted": 3,
        "files_already_current": 0,
        "files_gone": 0,
        "files_not_ours": 0,
        "files_failed": [],
    }
    for secret in (CONNECTION_SECRET, webhook_secret):
        assert secret not in output
        assert secret not in json.dumps(row.summary)


def test_files_already_under_the_newest_key_are_left_alone(team, settings, old_key, upload_dir):
    stored = altcraft_services.upload_store(pieces=[b"email\na@example.com\n"])
    key = new_key()
    settings.CREDENTIALS_KEYS = [key, old_key]
    fresh = altcraft_services.upload_store(pieces=[b"email\nb@example.com\n"])
    fresh_inode = storage.absolute(fresh.path).stat().st_ino

    call_command("rotate_credentials_key", stdout=io.StringIO())
    rotated_inode = storage.absolute(stored.path).stat().st_ino
    out = io.StringIO()
    call_command("rotate_credentials_key", stdout=out)  # again: nothing left to do

    assert storage.absolute(fresh.path).stat().st_ino == fresh_inode
    assert storage.absolute(stored.path).stat().st_ino == rotated_inode
    assert "0 stored files (2 already under it)" in out.getvalue()
    last = AuditEvent.objects.filter(action="credentials.key_rotated").latest("id")
    assert last.summary["files_reencrypted"] == 0
    assert last.summary["files_already_current"] == 2


def test_a_file_no_key_decrypts_is_named_and_left_as_it_was(team, settings, old_key, upload_dir):
    good = altcraft_services.upload_store(pieces=[b"email\ngood@example.com\n"])
    settings.CREDENTIALS_KEYS = [new_key()]  # a key nobody has any more
    lost = altcraft_services.upload_store(pieces=[b"email\nlost@example.com\n"])
    lost_bytes = storage.absolute(lost.path).read_bytes()

    key = new_key()
    settings.CREDENTIALS_KEYS = [key, old_key]
    out = io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("rotate_credentials_key", stdout=out)

    message = str(raised.value)
    assert lost.path in message
    assert "cannot be decrypted with any key in CREDENTIALS_KEYS" in message
    assert str(upload_dir) not in message  # the file's name only, not where it lives
    assert good.path not in message
    assert storage.absolute(lost.path).read_bytes() == lost_bytes
    assert hidden_files(upload_dir) == []
    # The other files and the database were still re-encrypted, and the run is audited.
    assert "1 stored file" in out.getvalue()
    settings.CREDENTIALS_KEYS = [key]
    assert b"".join(storage.iter_plaintext(good.path)) == b"email\ngood@example.com\n"
    row = AuditEvent.objects.get(action="credentials.key_rotated")
    assert row.summary["files_failed"] == [lost.path]
    assert row.summary["files_reencrypted"] == 1


def test_a_file_deleted_before_its_turn_is_skipped(
    team, settings, old_key, upload_dir, monkeypatch
):
    kept = altcraft_services.upload_store(pieces=[b"email\nkept@example.com\n"])
    expired = altcraft_services.upload_store(pieces=[b"email\nexpired@example.com\n"])
    listed = storage.stored_file_names

    def listed_then_expired() -> list[str]:
        names = listed()
        storage.delete(expired.path)  # the expiry sweep, between the listing and the rotation
        return names

    monkeypatch.setattr(storage, "stored_file_names", listed_then_expired)
    key = new_key()
    settings.CREDENTIALS_KEYS = [key, old_key]
    out = io.StringIO()
    call_command("rotate_credentials_key", stdout=out)

    assert "1 stored file (1 deleted meanwhile)" in out.getvalue()
    assert not storage.absolute(expired.path).exists()  # not brought back
    settings.CREDENTIALS_KEYS = [key]
    assert b"".join(storage.iter_plaintext(kept.path)) == b"email\nkept@example.com\n"
    row = AuditEvent.objects.get(action="credentials.key_rotated")
    assert row.summary["files_gone"] == 1 and row.summary["files_reencrypted"] == 1


def test_a_secret_no_key_decrypts_stops_it_before_any_file_changes(
    team, settings, old_key, upload_dir
):
    stored = altcraft_services.upload_store(pieces=[b"email\na@example.com\n"])
    stored_bytes = storage.absolute(stored.path).read_bytes()
    settings.CREDENTIALS_KEYS = [new_key()]
    VendorConnectionFactory(tenant=team.tenant, name="Lost key")

    settings.CREDENTIALS_KEYS = [new_key(), old_key]
    with pytest.raises(CommandError, match="Nothing was changed") as raised:
        call_command("rotate_credentials_key", stdout=io.StringIO())

    assert "'Lost key'" in str(raised.value)
    assert storage.absolute(stored.path).read_bytes() == stored_bytes
    assert not AuditEvent.objects.filter(action="credentials.key_rotated").exists()


def test_a_failed_rewrite_leaves_the_original_and_no_copy(
    team, settings, old_key, upload_dir, monkeypatch
):
    stored = altcraft_services.upload_store(pieces=[b"email\na@example.com\n"])
    original = storage.absolute(stored.path).read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, os.strerror(28))

    monkeypatch.setattr(storage.os, "fsync", disk_full)
    settings.CREDENTIALS_KEYS = [new_key(), old_key]
    with pytest.raises(CommandError, match=stored.path):
        call_command("rotate_credentials_key", stdout=io.StringIO())

    assert storage.absolute(stored.path).read_bytes() == original
    assert hidden_files(upload_dir) == []
