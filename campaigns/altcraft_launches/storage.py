"""Uploaded lists at rest: encrypted, streamed, deleted when they expire.

A stored file is a header line `TDENC1\\n` followed by segments, each a 4-byte big-endian length
and a Fernet token under the credentials keys (dashboard.tenancy.crypto: the newest key encrypts, any
configured key decrypts). Files are written and read one segment at a time, so memory never
grows with the file: an upload is encrypted in segments of SEGMENT_BYTES as it arrives, and a
launch's prepared chunks are one segment each, read back by offset and length.

Files live under settings.ALTCRAFT_UPLOAD_DIR, which the web process and the workers must share
(a volume in production).

`manage.py rotate_credentials_key` re-encrypts them under the newest key (`rotate_file`), one
segment at a time into a copy that replaces the file: a segment's token keeps its length, so
every (offset, length) the database holds for a chunk stays valid.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import io
import os
import stat
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from django.conf import settings

from dashboard.tenancy.crypto import credentials_cipher, is_under_newest_key

if TYPE_CHECKING:
    from dashboard.tenancy.services import KeyRotation

MAGIC = b"TDENC1\n"
SEGMENT_BYTES = 1024 * 1024
_LENGTH = struct.Struct(">I")


class StoredFileError(Exception):
    """A stored file is missing, damaged or cannot be decrypted with the configured keys."""


def _configured_dir() -> Path:
    return Path(getattr(settings, "ALTCRAFT_UPLOAD_DIR", settings.BASE_DIR / ".uploads"))


def upload_dir() -> Path:
    directory = _configured_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return directory


def new_path(suffix: str) -> str:
    """A fresh file name under the upload directory (relative to it)."""
    return f"{uuid.uuid4().hex}.{suffix}"


def absolute(relative: str) -> Path:
    path = (upload_dir() / relative).resolve()
    if path.parent != upload_dir().resolve():
        raise StoredFileError("A stored file must sit directly in the upload directory.")
    return path


class EncryptedWriter:
    """Writes plaintext as encrypted segments; tracks the plaintext's size and SHA-256."""

    def __init__(self, relative: str, *, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.relative = relative
        self.segment_bytes = segment_bytes
        self.size = 0
        self._sha256 = hashlib.sha256()
        self._buffer = bytearray()
        self._cipher = credentials_cipher()
        descriptor = os.open(absolute(relative), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file: BinaryIO = os.fdopen(descriptor, "wb")
        self._file.write(MAGIC)
        self._offset = len(MAGIC)

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    def write(self, data: bytes) -> None:
        """Buffer `data`, writing a segment whenever the buffer reaches the segment size."""
        self.size += len(data)
        self._sha256.update(data)
        self._buffer += data
        while len(self._buffer) >= self.segment_bytes:
            self._write_segment(bytes(self._buffer[: self.segment_bytes]))
            del self._buffer[: self.segment_bytes]

    def write_record(self, data: bytes | bytearray) -> tuple[int, int]:
        """Write `data` as segments of its own (none shared with other data); return their
        (offset, length) in the file, for `read_record`."""
        self.size += len(data)
        self._sha256.update(data)
        view = memoryview(data)
        offset, length = self._offset, 0
        for start in range(0, len(data), self.segment_bytes):
            length += self._write_segment(bytes(view[start : start + self.segment_bytes]))[1]
        return offset, length

    def _write_segment(self, data: bytes) -> tuple[int, int]:
        token = self._cipher.encrypt(data)
        offset = self._offset
        self._file.write(_LENGTH.pack(len(token)))
        self._file.write(token)
        self._offset += _LENGTH.size + len(token)
        return offset, _LENGTH.size + len(token)

    def close(self) -> None:
        if self._buffer:
            self._write_segment(bytes(self._buffer))
            self._buffer.clear()
        self._file.close()

    def discard(self) -> None:
        self._file.close()
        delete(self.relative)


def iter_plaintext(relative: str) -> Iterator[bytes]:
    """The stored file's plaintext, one segment at a time."""
    from cryptography.fernet import InvalidToken  # loaded on use: see dashboard/tenancy/crypto.py

    cipher = credentials_cipher()
    try:
        file = open(absolute(relative), "rb")  # noqa: SIM115 - closed below, generator
    except FileNotFoundError:
        raise StoredFileError("The stored file is gone (it expired or was deleted).") from None
    with file:
        if file.read(len(MAGIC)) != MAGIC:
            raise StoredFileError("The stored file is not an encrypted TriggerDesk file.")
        while True:
            header = file.read(_LENGTH.size)
            if not header:
                return
            (length,) = _LENGTH.unpack(header)
            token = file.read(length)
            if len(token) != length:
                raise StoredFileError("The stored file is truncated.")
            try:
                yield cipher.decrypt(token)
            except InvalidToken:
                raise StoredFileError(
                    "The stored file cannot be decrypted with the configured keys."
                ) from None


def read_record(relative: str, *, offset: int, length: int) -> bytes:
    """The plaintext `write_record` stored at (offset, length)."""
    from cryptography.fernet import InvalidToken  # loaded on use: see dashboard/tenancy/crypto.py

    try:
        with open(absolute(relative), "rb") as file:
            file.seek(offset)
            record = file.read(length)
    except FileNotFoundError:
        raise StoredFileError("The stored file is gone (it expired or was deleted).") from None
    if len(record) != length:
        raise StoredFileError("The stored file is truncated.")
    cipher = credentials_cipher()
    parts = []
    position = 0
    while position < length:
        if position + _LENGTH.size > length:
            raise StoredFileError("The stored file is damaged.")
        (token_length,) = _LENGTH.unpack_from(record, position)
        position += _LENGTH.size
        token = record[position : position + token_length]
        position += token_length
        if len(token) != token_length:
            raise StoredFileError("The stored file is damaged.")
        try:
            parts.append(cipher.decrypt(token))
        except InvalidToken:
            raise StoredFileError(
                "The stored file cannot be decrypted with the configured keys."
            ) from None
    del record
    return b"".join(parts)


class PlaintextStream:
    """A read()-able view of a stored file's plaintext, for csv and codecs."""

    def __init__(self, relative: str) -> None:
        self._segments = iter_plaintext(relative)
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            segment = next(self._segments, None)
            if segment is None:
                break
            self._buffer += segment
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


class SeekablePlaintext(io.RawIOBase):
    """A seekable, read-only view of a stored upload's plaintext, for zipfile (an XLSX): one
    decrypted segment is held at a time, and nothing is written to disk in the clear.

    An upload's segments all hold `EncryptedWriter.segment_bytes` but the last, so a position
    maps to a segment by division; the tokens' offsets come from one pass over their headers.
    """

    def __init__(self, relative: str) -> None:
        from cryptography.fernet import (
            InvalidToken,  # loaded on use: see dashboard/tenancy/crypto.py
        )

        self._invalid_token = InvalidToken
        self._cipher = credentials_cipher()
        try:
            self._file: BinaryIO = open(absolute(relative), "rb")  # noqa: SIM115 - close()
        except FileNotFoundError:
            raise StoredFileError("The stored file is gone (it expired or was deleted).") from None
        self._tokens: list[tuple[int, int]] = []
        self._cached_index = -1
        self._cached = b""
        self._position = 0
        self._segment_bytes = self._size = 0
        try:
            self._index()
        except BaseException:
            self._file.close()
            raise

    def _index(self) -> None:
        if self._file.read(len(MAGIC)) != MAGIC:
            raise StoredFileError("The stored file is not an encrypted TriggerDesk file.")
        while True:
            header = self._file.read(_LENGTH.size)
            if not header:
                break
            if len(header) != _LENGTH.size:
                raise StoredFileError("The stored file is truncated.")
            (length,) = _LENGTH.unpack(header)
            self._tokens.append((self._file.tell(), length))
            self._file.seek(length, os.SEEK_CUR)
        self._segment_bytes = len(self._segment(0)) if self._tokens else 0
        last = len(self._tokens) - 1
        self._size = last * self._segment_bytes + len(self._segment(last)) if self._tokens else 0

    def _segment(self, index: int) -> bytes:
        if index != self._cached_index:
            offset, length = self._tokens[index]
            self._file.seek(offset)
            token = self._file.read(length)
            if len(token) != length:
                raise StoredFileError("The stored file is truncated.")
            try:
                self._cached = self._cipher.decrypt(token)
            except self._invalid_token:
                raise StoredFileError(
                    "The stored file cannot be decrypted with the configured keys."
                ) from None
            self._cached_index = index
            full = index < len(self._tokens) - 1
            if full and self._segment_bytes and len(self._cached) != self._segment_bytes:
                raise StoredFileError("The stored file is damaged (uneven segments).")
        return self._cached

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer) -> int:
        # Fills the buffer across segments (zipfile takes a short read for a truncated file).
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view) and self._position < self._size:
            index, start = divmod(self._position, self._segment_bytes)
            data = self._segment(index)[start : start + len(view) - filled]
            view[filled : filled + len(data)] = data
            filled += len(data)
            self._position += len(data)
        return filled

    def close(self) -> None:
        self._file.close()
        self._cached = b""
        super().close()


def delete(relative: str) -> None:
    if relative:
        with contextlib.suppress(FileNotFoundError):
            absolute(relative).unlink()


# -- key rotation ----------------------------------------------------------------------------------


class Rotated(enum.StrEnum):
    """What `rotate_file` did with a file."""

    REENCRYPTED = "reencrypted"  # rewritten under the newest key
    CURRENT = "current"  # already under the newest key (or no segment written yet): untouched
    GONE = "gone"  # deleted (expired, discarded) before or while it was rotated: skipped
    NOT_STORED = "not_stored"  # not a TDENC1 file: not ours, untouched


def stored_file_names() -> list[str]:
    """The names of the files in the upload directory, sorted; hidden files (the copies a
    rotation is writing) and anything but regular files are left out. Nothing is created."""
    try:
        entries = list(os.scandir(_configured_dir()))
    except FileNotFoundError:
        return []
    return sorted(
        entry.name
        for entry in entries
        if not entry.name.startswith(".") and entry.is_file(follow_symlinks=False)
    )


def _read_token(file: BinaryIO) -> bytes | None:
    """The next segment's token, or None at the end; StoredFileError when it is cut short."""
    header = file.read(_LENGTH.size)
    if not header:
        return None
    if len(header) != _LENGTH.size:
        raise StoredFileError("The stored file is truncated.")
    (length,) = _LENGTH.unpack(header)
    token = file.read(length)
    if len(token) != length:
        raise StoredFileError("The stored file is truncated.")
    return token


def rotate_file(relative: str) -> Rotated:
    """Re-encrypt a stored file under the newest key in CREDENTIALS_KEYS, in place.

    One segment at a time (memory does not grow with the file), MultiFernet.rotate turns each
    token into one of exactly the same length under the newest key, written to a hidden copy in
    the same directory (same mode and owner), fsynced, then moved over the original with
    os.replace. Every segment keeps its offset and length, so the (offset, length) of each chunk
    in the database stays valid; a reader that opened the file before keeps reading the old
    copy, which the old key decrypts until it is removed.

    A writer uses one key for a whole file, so a file whose first segment is under the newest
    key is left as it is (one rotated already, or one being written by a process that has the
    new keys). On any error (a segment no key decrypts, a damaged file, a full disk, the file
    changing meanwhile) StoredFileError says why, without the file's path or contents; the
    original stays and the copy is deleted.
    """
    path = absolute(relative)
    try:
        return _rotate(path)
    except OSError as error:
        raise StoredFileError(f"The file could not be rewritten: {error.strerror}.") from None


def _rotate(path: Path) -> Rotated:
    try:
        source = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        return Rotated.GONE
    with source:
        before = os.fstat(source.fileno())
        header = source.read(len(MAGIC))
        if header != MAGIC:
            # An empty or partial header is a file whose writer has not flushed yet.
            return Rotated.CURRENT if MAGIC.startswith(header) else Rotated.NOT_STORED
        try:
            first = _read_token(source)
        except StoredFileError:
            first = None  # its first segment is still being written: nothing under a key yet
        if first is None or is_under_newest_key(first):
            return Rotated.CURRENT
        source.seek(len(MAGIC))
        copy = path.with_name(f".{path.name}.{uuid.uuid4().hex}.rotating")
        try:
            _write_rotated_copy(source, copy, before)
            try:
                still_there = os.path.samestat(os.stat(path), before)
            except FileNotFoundError:
                still_there = False
            if not still_there:
                return Rotated.GONE  # expired or discarded meanwhile: do not bring it back
            os.replace(copy, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                copy.unlink()
    # The sweep of files no launch refers to goes by the modification time: keep the original's.
    # A failure here or in the directory's fsync still leaves a valid file.
    with contextlib.suppress(OSError):
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        _fsync_directory(path.parent)
    return Rotated.REENCRYPTED


def _write_rotated_copy(source: BinaryIO, copy: Path, before: os.stat_result) -> None:
    """Write `source` (positioned after its header) re-encrypted to `copy`, synced, and check
    that the copy has the original's size and every segment its length."""
    from cryptography.fernet import InvalidToken  # loaded on use: see dashboard/tenancy/crypto.py

    cipher = credentials_cipher()
    descriptor = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as target:
        os.fchmod(descriptor, stat.S_IMODE(before.st_mode))
        created = os.fstat(descriptor)
        if (created.st_uid, created.st_gid) != (before.st_uid, before.st_gid):
            # Run as root, say: the copy must stay readable by the app's own user.
            os.fchown(descriptor, before.st_uid, before.st_gid)
        target.write(MAGIC)
        offset = len(MAGIC)
        while (token := _read_token(source)) is not None:
            try:
                rotated = cipher.rotate(token)
            except InvalidToken:
                raise StoredFileError(
                    "The stored file cannot be decrypted with any key in CREDENTIALS_KEYS."
                ) from None
            if len(rotated) != len(token):
                raise StoredFileError(f"The segment at byte {offset} would change its length.")
            target.write(_LENGTH.pack(len(rotated)))
            target.write(rotated)
            offset += _LENGTH.size + len(rotated)
        target.flush()
        os.fsync(descriptor)
        written = os.fstat(descriptor).st_size
    after = os.fstat(source.fileno())
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise StoredFileError("The file changed while it was re-encrypted; run the command again.")
    if not written == offset == before.st_size:
        raise StoredFileError("The re-encrypted copy's size differs from the original's.")


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def rotate_stored_files(rotation: KeyRotation) -> None:
    """Re-encrypt every stored file under the newest key (the key-rotation hook this app
    contributes, AppConfig.key_rotation_hooks), counting each outcome on `rotation`; a file that
    cannot be re-encrypted stays as it was and is named in `rotation.files_failed`."""
    for name in stored_file_names():
        try:
            outcome = rotate_file(name)
        except StoredFileError as error:
            rotation.files_failed[name] = str(error)
            continue
        match outcome:
            case Rotated.REENCRYPTED:
                rotation.files += 1
            case Rotated.CURRENT:
                rotation.files_current += 1
            case Rotated.GONE:
                rotation.files_gone += 1
            case Rotated.NOT_STORED:
                rotation.files_not_ours += 1
