"""Stored uploads read back: the seekable view zipfile reads an XLSX through."""

from __future__ import annotations

import os
import random

import pytest

from campaigns.altcraft_launches import storage


def test_the_seekable_view_reads_any_range_of_the_plaintext(upload_dir) -> None:
    plaintext = random.Random(7).randbytes(10_500)
    writer = storage.EncryptedWriter(storage.new_path("upload"), segment_bytes=1000)
    for start in range(0, len(plaintext), 333):
        writer.write(plaintext[start : start + 333])
    writer.close()

    with storage.SeekablePlaintext(writer.relative) as view:
        assert view.seek(0, os.SEEK_END) == len(plaintext)
        for start, size in [(0, 10), (995, 10), (2000, 3500), (10_400, 500), (10_500, 5)]:
            view.seek(start)
            assert view.read(size) == plaintext[start : start + size]
        view.seek(-20, os.SEEK_END)
        assert view.read() == plaintext[-20:]


def test_a_damaged_stored_file_is_a_clear_error(upload_dir) -> None:
    writer = storage.EncryptedWriter(storage.new_path("upload"), segment_bytes=1000)
    writer.write(b"x" * 2500)
    writer.close()
    path = storage.absolute(writer.relative)
    path.write_bytes(path.read_bytes()[:-10])

    with pytest.raises(storage.StoredFileError, match="truncated"):
        storage.SeekablePlaintext(writer.relative).read()
