"""Uploaded lists at rest: encrypted, streamed, deleted when they expire.

A stored file is a header line `TDENC1\\n` followed by segments, each a 4-byte big-endian length
and a Fernet token under the credentials keys (dashboard.crypto: the newest key encrypts, any
configured key decrypts). Files are written and read one segment at a time, so memory never
grows with the file: an upload is encrypted in segments of SEGMENT_BYTES as it arrives, and a
launch's prepared chunks are one segment each, read back by offset and length.

Files live under settings.ALTCRAFT_UPLOAD_DIR, which the web process and the workers must share
(a volume in production).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

from dashboard.crypto import credentials_cipher

MAGIC = b"TDENC1\n"
SEGMENT_BYTES = 1024 * 1024
_LENGTH = struct.Struct(">I")


class StoredFileError(Exception):
    """A stored file is missing, damaged or cannot be decrypted with the configured keys."""


def upload_dir() -> Path:
    directory = Path(getattr(settings, "ALTCRAFT_UPLOAD_DIR", settings.BASE_DIR / ".uploads"))
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
    from cryptography.fernet import InvalidToken  # loaded on use: see dashboard/crypto.py

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
    from cryptography.fernet import InvalidToken  # loaded on use: see dashboard/crypto.py

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


def delete(relative: str) -> None:
    if relative:
        with contextlib.suppress(FileNotFoundError):
            absolute(relative).unlink()
