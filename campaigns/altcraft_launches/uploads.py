"""An upload handler that encrypts the list file as it arrives (storage.py), so the plaintext
never touches the disk and the web process holds one segment of it at a time."""

from __future__ import annotations

import io

from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, SkipFile

from campaigns.altcraft_launches import services, storage

LIST_FIELD = "file"


class StoredUploadFile(UploadedFile):
    """What the form sees for the list file: a name and size; the rows are in `stored`."""

    def __init__(self, *, name: str, stored: services.StoredUpload) -> None:
        super().__init__(file=io.BytesIO(b""), name=name, size=stored.size)
        self.stored = stored


class EncryptingUploadHandler(FileUploadHandler):
    """Handles the `file` field only; other files (attachments) go to the next handlers."""

    def __init__(self, request=None) -> None:
        super().__init__(request)
        self.writer: storage.EncryptedWriter | None = None
        self.error = ""

    def new_file(
        self,
        field_name,
        file_name,
        content_type,
        content_length,
        charset=None,
        content_type_extra=None,
    ):
        super().new_file(
            field_name, file_name, content_type, content_length, charset, content_type_extra
        )
        self.writer = None
        if field_name != LIST_FIELD:
            return
        if content_length and content_length > services.upload_max_bytes():
            self.error = services.too_large_message(content_length)
            raise SkipFile()
        self.writer = storage.EncryptedWriter(storage.new_path("upload"))

    def receive_data_chunk(self, raw_data, start):
        if self.writer is None:
            return raw_data
        self.writer.write(raw_data)
        if self.writer.size > services.upload_max_bytes():
            self.writer.discard()
            self.writer = None
            self.error = services.too_large_message()
            raise SkipFile()
        return None

    def file_complete(self, file_size):
        if self.writer is None:
            return None
        self.writer.close()
        stored = services.StoredUpload(
            path=self.writer.relative, size=self.writer.size, sha256=self.writer.sha256
        )
        self.writer = None
        return StoredUploadFile(name=self.file_name or "upload.csv", stored=stored)

    def upload_interrupted(self) -> None:
        if self.writer is not None:
            self.writer.discard()
            self.writer = None
