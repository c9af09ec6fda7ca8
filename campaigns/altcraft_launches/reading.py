"""Reading an uploaded list: encoding, header, rows, checks, duplicates, chunks.

Everything streams: rows are read one at a time from the encrypted upload, checked, turned into
the JSON item Altcraft receives, and appended to the current chunk, which is written (encrypted)
as soon as the next item would push its request body over the limit. Only a set of 8-byte hashes
of the values seen so far (for duplicates) grows with the file.

Row numbers are record numbers with the header as row 1, which is the spreadsheet row for every
file without line breaks inside a cell.

Problems with the file itself (encoding, header, a row too large for any request, empty) raise
FileRejected: nothing can be sent from such a file. Problems with a row (a bad email, a missing
value) make that row invalid: it is counted, shown with its number and reason, and left out.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import itertools
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from campaigns.altcraft_launches import storage

INVALID_SAMPLES_KEPT = 200
PROGRESS_EVERY = 50_000
SNIFF_BYTES = 64 * 1024
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
PHONE_PUNCTUATION = re.compile(r"[\s\-().]")
PHONE = re.compile(r"^\+?\d{10,15}$")


# Excel's own limit for a worksheet: a longer list was not saved by Excel, and the vendor's doc
# sets none (only the 10 MB request body). It bounds a preparation's time and memory (the
# duplicate table) for CSV files too.
DEFAULT_MAX_ROWS = 1_048_576
# What an XLSX may unpack to: as much as the largest upload (a CSV is read as it is stored).
DEFAULT_XLSX_MAX_UNPACKED_BYTES = 256 * 1024 * 1024


def max_rows() -> int:
    """The most rows (the header included) a launch file may have."""
    return int(getattr(settings, "ALTCRAFT_UPLOAD_MAX_ROWS", DEFAULT_MAX_ROWS))


def xlsx_max_unpacked_bytes() -> int:
    """The most bytes an XLSX's members may unpack to, together."""
    return int(
        getattr(settings, "ALTCRAFT_XLSX_MAX_UNPACKED_BYTES", DEFAULT_XLSX_MAX_UNPACKED_BYTES)
    )


def too_many_rows_message() -> str:
    return (
        f"The file has more than {max_rows():,} rows (the header included), the most a list "
        "may have. Split it into several files. Nothing was sent."
    )


def xlsx_too_large_message() -> str:
    return (
        f"The workbook unpacks to more than {xlsx_max_unpacked_bytes() / 1_000_000:,.0f} MB, "
        "the most an XLSX may hold. Save it as CSV or split it into several files. Nothing "
        "was sent."
    )


def too_many_texts_message() -> str:
    return (
        f"The workbook's table of texts (shared strings) holds more than {max_rows():,} "
        f"texts or {shared_strings_max_bytes() / 1_000_000:,.0f} MB, more than a list may "
        "have. Save it as CSV or split it into several files. Nothing was sent."
    )


def shared_strings_max_bytes() -> int:
    # openpyxl keeps the table in memory: a quarter of what the workbook may unpack to.
    return xlsx_max_unpacked_bytes() // 4


def safety_bytes(limit_bytes: int) -> int:
    """Room left under the body limit for a token that grows between the preview and the send
    (a kilobyte of 10 MB; less under the tiny limits of tests)."""
    return min(1024, limit_bytes // 1000)


# The column a launch file names for each matching mode (custom: the profile field's name).
LAUNCH_COLUMNS = {
    "email": "email",
    "email_profile": "email",
    "phone": "phone",
    "profile_id": "profile_id",
}
ITEM_KEYS = {
    "email": "email",
    "email_profile": "email",
    "phone": "phone",
    "profile_id": "profile_id",
    "custom": "field_value",
}


class FileRejected(Exception):
    """The file cannot be sent at all; the message says why and where (row numbers)."""


class MappingRejected(FileRejected):
    """An import's column mapping cannot be used with its file: `code` names the problem (for the
    API's problem codes) and `column` the column it is about ("" when none)."""

    def __init__(self, message: str, *, code: str, column: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.column = column


@dataclass
class Preparation:
    """What reading a file found, and the chunks it wrote."""

    encoding: str = ""
    rows_read: int = 0
    rows_valid: int = 0
    rows_invalid: int = 0
    rows_duplicate: int = 0
    rows_empty: int = 0
    empty_samples: list[int] = field(default_factory=list)
    invalid_samples: list[dict[str, Any]] = field(default_factory=list)
    chunks: list[dict[str, Any]] = field(default_factory=list)
    largest_body_bytes: int = 0
    total_body_bytes: int = 0
    # Called with rows_read every PROGRESS_EVERY rows (the page shows how far the reading is).
    report: Callable[[int], None] | None = None

    def row_read(self) -> None:
        self.rows_read += 1
        if self.report is not None and self.rows_read % PROGRESS_EVERY == 0:
            self.report(self.rows_read)

    def empty(self, row: int) -> None:
        self.rows_empty += 1
        if len(self.empty_samples) < EMPTY_SAMPLES_KEPT:
            self.empty_samples.append(row)

    def invalid(self, row: int, reason: str) -> None:
        self.rows_invalid += 1
        if len(self.invalid_samples) < INVALID_SAMPLES_KEPT:
            self.invalid_samples.append({"row": row, "reason": reason})


# -- encodings and rows ----------------------------------------------------------------------


def detect_encoding(head: bytes) -> str:
    """utf-8-sig, utf-8 or cp1251, from the file's first bytes; FileRejected for anything else."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise FileRejected(
            "The file is UTF-16 encoded. Save it as “CSV UTF-8” (or Windows-1251) and upload it "
            "again."
        )
    if b"\x00" in head:
        raise FileRejected("The file holds NUL bytes: it is not a text (CSV) file.")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError as error:
        utf8_error = error
    high = [byte for byte in head if byte >= 0x80]
    cyrillic = [byte for byte in high if byte >= 0xC0 or byte in (0xA8, 0xB8)]
    if high and len(cyrillic) / len(high) >= 0.7 and 0x98 not in high:
        return "cp1251"
    row = head[: utf8_error.start].count(b"\n") + 1
    raise FileRejected(
        f"The file is not UTF-8 (an invalid byte 0x{head[utf8_error.start]:02x} on line {row}) "
        "and does not look like Windows-1251 (cp1251) either. Save it as “CSV UTF-8” and "
        "upload it again."
    )


class _PlaintextRaw(io.RawIOBase):
    def __init__(self, stream: storage.PlaintextStream, head: bytes) -> None:
        self._stream = stream
        self._head = head

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            data, self._head = self._head[: len(buffer)], self._head[len(buffer) :]
        else:
            data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def is_xlsx(head: bytes, name: str) -> bool:
    return head.startswith(b"PK\x03\x04") or name.lower().endswith(".xlsx")


def iter_rows(
    upload_path: str, *, name: str, encoding_hint: str = "", header_only: bool = False
) -> tuple[str, Iterator]:
    """(encoding, rows): each row (row number, cells as stripped strings), the header first.

    `header_only`: an XLSX is unpacked only as far as its first row (a CSV is read as it is
    asked for anyway).
    """
    stream = storage.PlaintextStream(upload_path)
    head = stream.read(SNIFF_BYTES)
    if not head:
        raise FileRejected("The file is empty.")
    if is_xlsx(head, name):
        return "xlsx", _xlsx_rows(upload_path, header_only=header_only)
    encoding = encoding_hint or detect_encoding(head)
    text = io.TextIOWrapper(
        io.BufferedReader(_PlaintextRaw(stream, head), 1024 * 1024),
        encoding=encoding,
        errors="strict",
        newline="",
    )
    return encoding, _csv_rows(
        text, encoding, _delimiter(head, encoding), lambda: _first_bad_line(upload_path, encoding)
    )


def _delimiter(head: bytes, encoding: str) -> str:
    """Comma, semicolon (Excel in many locales) or tab, from the header line."""
    first_line = head.decode(encoding, errors="replace").lstrip("\ufeff").split("\n", 1)[0]
    counts = {delimiter: first_line.count(delimiter) for delimiter in (",", ";", "\t")}
    best = max(counts, key=lambda delimiter: counts[delimiter])
    return best if counts[best] else ","


def _first_bad_line(upload_path: str, encoding: str) -> tuple[int, int]:
    """(line, byte) of the first byte `encoding` cannot decode, counted in the bytes the decoder
    actually consumed: the text reader decodes kilobytes ahead of the row the csv reader is on,
    so that row is not where the bad byte is. Read again from the start, on the error path only.
    """
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    lines_before = 0
    # An error's object is what that call decoded: the previous segment's incomplete character
    # (never a newline) and this segment.
    for segment in itertools.chain(storage.iter_plaintext(upload_path), [b""]):
        try:
            decoder.decode(segment, final=not segment)
        except UnicodeDecodeError as error:
            consumed = error.object[: error.start]
            return lines_before + consumed.count(b"\n") + 1, error.object[error.start]
        lines_before += segment.count(b"\n")
    return lines_before + 1, 0


def _csv_rows(
    text: io.TextIOWrapper, encoding: str, delimiter: str, locate_bad_byte
) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(text, delimiter=delimiter, strict=True)
    maximum = max_rows()
    number = 0
    try:
        for cells in reader:
            number += 1
            if number > maximum:
                raise FileRejected(too_many_rows_message())
            yield number, [cell.strip() for cell in cells]
    except UnicodeDecodeError:
        line, byte = locate_bad_byte()
        raise FileRejected(
            f"Line {line} is not valid {encoding} (a byte 0x{byte:02x}): the file mixes "
            "encodings. Save it as “CSV UTF-8” and upload it again."
        ) from None
    except csv.Error as error:
        raise FileRejected(f"Row {number + 1} cannot be read as CSV: {error}.") from None


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


class _WorkbookTooLarge(FileRejected):
    pass


class _CountedMember:
    """A member of the workbook as openpyxl reads it, counting the bytes it unpacks against the
    workbook's budget: a member's declared size may lie."""

    def __init__(self, member: Any, budget: list[int]) -> None:
        self._member = member
        self._budget = budget  # [bytes still allowed], shared by all members

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self._budget[0] + 1  # enough to tell "over" without unpacking more
        data = self._member.read(size)
        self._budget[0] -= len(data)
        if self._budget[0] < 0:
            raise _WorkbookTooLarge(xlsx_too_large_message())
        return data

    def close(self) -> None:
        self._member.close()

    def __enter__(self) -> _CountedMember:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class _BoundedZip(zipfile.ZipFile):
    """The workbook's zip, refused when its members declare more than the limit unpacked, and
    each member counted as it is unpacked."""

    def __init__(self, file: Any, limit: int) -> None:
        super().__init__(file, "r")
        if sum(info.file_size for info in self.infolist()) > limit:
            raise _WorkbookTooLarge(xlsx_too_large_message())
        self._budget = [limit]
        self.header_only = False
        self._worksheets = {
            name
            for name in self.namelist()
            if name.startswith("xl/worksheets/") and name.endswith(".xml") and "_rels" not in name
        }
        self._sized: set[str] = set()

    def open(self, name: Any, mode: str = "r", pwd: bytes | None = None, **kwargs: Any) -> Any:
        member = _CountedMember(super().open(name, mode, pwd, **kwargs), self._budget)
        filename = getattr(name, "filename", name)
        if filename in self._worksheets and (self.header_only or filename not in self._sized):
            # openpyxl opens a sheet first only to find its declared size (<dimension>, before
            # the rows); a sheet without one it would parse whole for that, then again for the
            # rows. The first row is enough: no size found, the rows are read to their end.
            self._sized.add(filename)
            return _UpToFirstRow(member)
        return member


_FIRST_ROW_END = re.compile(rb"</(?:([\w.-]+):)?row>|<(?:([\w.-]+):)?row\b[^>]*/>")


class _UpToFirstRow:
    """A worksheet member that ends after its first row element, closed as a whole sheet: the
    header is all the mapping page needs, and a web request unpacks no more than that."""

    def __init__(self, member: _CountedMember) -> None:
        self._member = member
        self._seen = b""
        self._done = False

    def read(self, size: int | None = -1) -> bytes:
        if self._done:
            return b""
        data = self._member.read(64 * 1024 if size is None or size < 0 else max(size, 1024))
        if not data:
            self._done = True
            return b""
        start = max(0, len(self._seen) - 256)  # a closing tag split across two reads
        window = self._seen[start:] + data
        match = _FIRST_ROW_END.search(window)
        if match is None:
            self._seen = window[-256:]
            return data
        self._done = True
        prefix = (match.group(1) or match.group(2) or b"").decode()
        tag = f"{prefix}:" if prefix else ""
        end = match.end() - (len(window) - len(data))
        return data[:end] + f"</{tag}sheetData></{tag}worksheet>".encode()

    def close(self) -> None:
        self._member.close()

    def __enter__(self) -> _UpToFirstRow:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def _excel_reader(file: Any, archive: _BoundedZip, *, header_only: bool) -> Any:
    """openpyxl's reader of the workbook (read-only, values), through `archive`: the shared
    strings bounded in count and bytes, and with `header_only` each worksheet cut after its
    first row."""
    from openpyxl.reader.excel import SHARED_STRINGS, ExcelReader

    class BoundedReader(ExcelReader):
        def read_strings(self) -> None:
            part = self.package.find(SHARED_STRINGS)
            if part is None:
                return
            with archive.open(part.PartName[1:]) as source:
                self.shared_strings = _shared_strings(_CountedStrings(source))

    archive.header_only = header_only
    # openpyxl opens its own zip of the file; read through the bounded one instead.
    reader = BoundedReader(file, read_only=True, data_only=True)
    reader.archive = archive
    reader.valid_files = archive.namelist()
    return reader


class _CountedStrings:
    """The shared-strings member, refused past its byte limit or once it holds more than
    `max_rows()` texts (openpyxl keeps every text in memory)."""

    def __init__(self, member: _CountedMember) -> None:
        self._member = member
        self._left = shared_strings_max_bytes()
        self._texts = 0
        self._maximum = max_rows()

    def read(self, size: int | None = -1) -> bytes:
        data = self._member.read(64 * 1024 if size is None or size < 0 else size)
        self._left -= len(data)
        self._texts += len(_TEXT_END.findall(data))
        if self._left < 0 or self._texts > self._maximum:
            raise _WorkbookTooLarge(too_many_texts_message())
        return data


_TEXT_END = re.compile(rb"</(?:[\w.-]+:)?si>|<(?:[\w.-]+:)?si\s*/>")


def _shared_strings(source: _CountedStrings) -> list[str]:
    """openpyxl's read_string_table, but each text's element leaves the tree once read (there
    they would stay, emptied, one per text)."""
    from openpyxl.cell.text import Text
    from openpyxl.xml.constants import SHEET_MAIN_NS
    from openpyxl.xml.functions import iterparse

    text_tag = f"{{{SHEET_MAIN_NS}}}si"
    strings: list[str] = []
    root = None
    for event, node in iterparse(source, events=("start", "end")):
        if root is None:
            root = node
        elif event == "end" and node.tag == text_tag:
            strings.append(Text.from_tree(node).content.replace("x005F_", ""))
            root.clear()
    return strings


def _xlsx_rows(upload_path: str, *, header_only: bool = False) -> Iterator[tuple[int, list[str]]]:
    maximum = max_rows()
    file = storage.SeekablePlaintext(upload_path)  # never the whole workbook in memory
    try:
        archive = _BoundedZip(file, xlsx_max_unpacked_bytes())
        reader = _excel_reader(file, archive, header_only=header_only)
        reader.read()
        sheet = reader.wb.worksheets[0]
        rows = sheet.iter_rows(values_only=True)
    except FileRejected:
        file.close()
        raise
    except Exception:  # openpyxl and zipfile raise many kinds for a damaged file
        file.close()
        raise FileRejected("The file cannot be read as an Excel workbook (.xlsx).") from None
    try:
        for number, values in enumerate(rows, start=1):
            if number > maximum:
                raise FileRejected(too_many_rows_message())
            yield number, [_cell_text(value) for value in values]
    except FileRejected:
        raise
    except Exception:
        raise FileRejected("The file cannot be read as an Excel workbook (.xlsx).") from None
    finally:
        reader.wb.close()
        file.close()


# -- values ------------------------------------------------------------------------------------


def clean_value(matching: str, raw: str) -> tuple[str | None, str, str]:
    """(value to send, duplicate key, reason it is invalid or "")."""
    if not raw:
        return None, "", f"missing {LAUNCH_COLUMNS.get(matching, 'value')}"
    if matching in ("email", "email_profile"):
        if not EMAIL.match(raw) or len(raw) > 254:
            return None, "", f"not an email address: {raw[:80]!r}"
        return raw, raw.casefold(), ""
    if matching == "phone":
        compact = PHONE_PUNCTUATION.sub("", raw)
        if not PHONE.match(compact):
            return None, "", f"not a phone number (10-15 digits): {raw[:80]!r}"
        return compact, compact.lstrip("+"), ""
    if any(character.isspace() for character in raw) and matching == "profile_id":
        return None, "", f"not a profile id: {raw[:80]!r}"
    return raw, raw, ""


def _duplicate_hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big")


def _looks_like_value(cell: str) -> bool:
    return "@" in cell or PHONE.match(PHONE_PUNCTUATION.sub("", cell)) is not None


# -- chunks --------------------------------------------------------------------------------------


class ChunkWriter:
    """Appends items to the current chunk; writes it (encrypted) before it would overflow.

    The chunk is kept as the exact bytes of its `data` array (`[item,item,...]`), in one
    buffer: at most one request body's worth of rows is in memory at a time.
    """

    def __init__(
        self, writer: storage.EncryptedWriter, *, overhead_bytes: int, limit_bytes: int
    ) -> None:
        self.writer = writer
        self.overhead_bytes = overhead_bytes
        self.limit_bytes = limit_bytes
        self.chunks: list[dict[str, Any]] = []
        self._buffer = bytearray(b"[")
        self._count = 0
        self._first_row = 0
        self._last_row = 0

    def fits_alone(self, item: bytes) -> int:
        return self.overhead_bytes + len(item)

    def _body_bytes(self) -> int:
        # The body with an empty array is the overhead; the array's items and commas add to it.
        return self.overhead_bytes + len(self._buffer) - 1

    def add(self, item: bytes, row: int) -> None:
        added = len(item) + (1 if self._count else 0)
        if self._count and self._body_bytes() + added > self.limit_bytes:
            self.flush()
        if self._count:
            self._buffer += b","
        else:
            self._first_row = row
        self._buffer += item
        self._count += 1
        self._last_row = row

    def flush(self) -> None:
        if not self._count:
            return
        body_bytes = self._body_bytes()
        self._buffer += b"]"
        offset, length = self.writer.write_record(self._buffer)
        self.chunks.append(
            {
                "number": len(self.chunks) + 1,
                "first_row": self._first_row,
                "last_row": self._last_row,
                "item_count": self._count,
                "body_bytes": body_bytes,
                "offset": offset,
                "length": length,
                "sha256": hashlib.sha256(self._buffer).hexdigest(),
            }
        )
        self._buffer = bytearray(b"[")
        self._count = 0


class SeenValues:
    """The duplicate check's memory: 8-byte hashes of the values seen, in an open-addressing
    table of 8-byte slots (about 16 bytes a row at most, where a Python set of ints takes ~60)."""

    def __init__(self, capacity: int = 1 << 16) -> None:
        self._slots = memoryview(bytearray(capacity * 8)).cast("Q")
        self._mask = capacity - 1
        self._count = 0

    def add(self, key: str) -> bool:
        """Record `key`; False when it was seen before."""
        value = _duplicate_hash(key) | 1  # 0 marks an empty slot
        slots, mask = self._slots, self._mask
        slot = value & mask
        while True:
            current = slots[slot]
            if current == 0:
                break
            if current == value:
                return False
            slot = (slot + 1) & mask
        slots[slot] = value
        self._count += 1
        if self._count * 5 > len(slots) * 3:
            self._grow()
        return True

    def _grow(self) -> None:
        old = self._slots
        capacity = len(old) * 2
        self._slots = memoryview(bytearray(capacity * 8)).cast("Q")
        self._mask = capacity - 1
        slots, mask = self._slots, self._mask
        for value in old:
            if value:
                slot = value & mask
                while slots[slot]:
                    slot = (slot + 1) & mask
                slots[slot] = value
        old.release()


def _item_bytes(item: dict[str, Any]) -> bytes:
    return json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# -- preparing a launch file -----------------------------------------------------------------------

# How many empty rows' numbers a launch keeps to show (the count is complete).
EMPTY_SAMPLES_KEPT = 10
# Other spellings of each matching kind's column that CRM exports use ("E-mail", "Mobile"...),
# compared without case, spaces, dashes or underscores.
COLUMN_ALIASES = {
    "email": {"email", "mail", "emailaddress"},
    "email_profile": {"email", "mail", "emailaddress"},
    "phone": {"phone", "phones", "mobile", "phonenumber", "mobilephone"},
    "profile_id": {"profileid"},
}


def launch_column(matching: str, field_name: str | None) -> str:
    """The column a list for `matching` names when it has only that one (a pasted list)."""
    return field_name if matching == "custom" else LAUNCH_COLUMNS[matching]


def _compact(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name).casefold()


def named_like(name: str, *, matching: str, field_name: str | None) -> bool:
    """Whether a header names the column of the matching kind (custom: the profile field)."""
    if matching == "custom":
        return bool(field_name) and _compact(name) in (_compact(field_name), "fieldvalue")
    return _compact(name) in COLUMN_ALIASES[matching]


def launch_header(rows: Iterator[tuple[int, list[str]]]) -> list[str]:
    """The header row (row 1) of a bulk launch file: FileRejected when it is missing, holds
    values instead of names, or names a column twice."""
    return import_header(rows)


def default_column(
    names: list[str], *, matching: str, field_name: str | None, remembered: str = ""
) -> str:
    """The column offered first: the one named like the matching kind (when one is), else the
    last one chosen for the trigger (when the header has it), else ""."""
    named = [
        name
        for name in names
        if name and named_like(name, matching=matching, field_name=field_name)
    ]
    if len(named) == 1:
        return named[0]
    if remembered and remembered in names:
        return remembered
    return ""


def obvious_column(names: list[str], *, matching: str, field_name: str | None) -> str:
    """The column to read without asking: the header's only column, named like the matching
    kind ("" when the uploader must choose)."""
    named = [name for name in names if name]
    if len(named) == 1 and named_like(named[0], matching=matching, field_name=field_name):
        return named[0]
    return ""


def ignored_columns(names: list[str], column: str) -> list[str]:
    """The header's other columns, as the preview lists them (an unnamed one by position)."""
    return [
        name or f"column {position} (no name)"
        for position, name in enumerate(names, start=1)
        if name != column and (name or position < len(names))
    ]


def _column_index(
    names: list[str], column: str | None, matching: str, field_name: str | None
) -> int:
    if column:
        if column in names:
            return names.index(column)
        # A launch queued before it named its column names its kind's ("email" for "Email").
        folded = [i for i, name in enumerate(names) if name.casefold() == column.casefold()]
        if len(folded) == 1:
            return folded[0]
        raise FileRejected(
            f"Row 1 (the header) has no column {column!r}. Found: "
            f"{', '.join(repr(name) for name in names if name) or 'nothing'}. Choose the column "
            "to send again."
        )
    found = default_column(names, matching=matching, field_name=field_name)
    if found:
        return names.index(found)
    expected = launch_column(matching, field_name)
    raise FileRejected(
        f"Row 1 (the header) has no column named {expected!r}, which matching {matching!r} "
        f"reads. Found: {', '.join(repr(name) for name in names if name) or 'nothing'}. Choose "
        "the column whose values to send."
    )


def prepare_launch_rows(
    rows: Iterator[tuple[int, list[str]]],
    names: list[str],
    *,
    column: str | None,
    matching: str,
    field_name: str | None,
    chunks: ChunkWriter,
    preparation: Preparation,
) -> str:
    """Check a bulk-launch file's rows and write its chunks of `{key: value}` items, each with
    the value of `column` only (None: the column named like the matching kind); the column read.

    The other columns are not read. A row with cells but none in `column` is counted as empty
    (`Preparation.empty`), neither sent nor invalid: the uploader decides about them.
    """
    index = _column_index(names, column, matching, field_name)
    key = ITEM_KEYS[matching]
    seen = SeenValues()
    for number, cells in rows:
        if not any(cells):
            continue
        preparation.row_read()
        if len(cells) > len(names) and any(cells[len(names) :]):
            preparation.invalid(number, f"{len(cells)} cells, but the header names {len(names)}")
            continue
        raw = cells[index] if index < len(cells) else ""
        if not raw:
            preparation.empty(number)
            continue
        value, duplicate_key, reason = clean_value(matching, raw)
        if reason:
            preparation.invalid(number, reason)
            continue
        if not seen.add(duplicate_key):
            preparation.rows_duplicate += 1
            continue
        _add_item(chunks, preparation, _item_bytes({key: value}), number)
    if preparation.rows_read == 0:
        raise FileRejected("The file has a header but no rows.")
    return names[index]


def _add_item(chunks: ChunkWriter, preparation: Preparation, item: bytes, row: int) -> None:
    alone = chunks.fits_alone(item)
    if alone > chunks.limit_bytes:
        raise FileRejected(
            f"Row {row} alone makes a request of {alone:,} bytes, over the limit of "
            f"{chunks.limit_bytes:,} bytes: it can never be sent. Shorten it or raise the "
            "connection's body limit."
        )
    chunks.add(item, row)
    preparation.rows_valid += 1


# -- preparing an import file ------------------------------------------------------------------------

MAPPING_TARGETS = ("field", "email_subscription", "phone_subscription", "ignore")


def import_header(rows: Iterator[tuple[int, list[str]]]) -> list[str]:
    header_row = next(rows, None)
    if header_row is None:
        raise FileRejected("The file is empty.")
    names = header_row[1]
    if not any(names):
        raise FileRejected("Row 1 (the header) is empty: the first row must name the columns.")
    if any(_looks_like_value(name) for name in names):
        raise FileRejected(
            "The file has no header row: row 1 holds values. Add a first row naming the columns."
        )
    duplicates = [name for position, name in enumerate(names) if name and name in names[:position]]
    if duplicates:
        first = duplicates[0]
        positions = [str(position) for position, name in enumerate(names, start=1) if name == first]
        raise FileRejected(
            f"Row 1 (the header) names the column {first!r} more than once (columns "
            f"{' and '.join(positions)}): rename them so that each column has its own name."
        )
    return names


def check_mapping(
    mapping: dict[str, Any], names: list[str], *, matching: str, field_name: str | None
) -> None:
    """MappingRejected unless `mapping` covers every column and carries the matching value."""
    columns = mapping.get("columns") or {}
    unknown = [name for name in names if name and name not in columns]
    if unknown:
        raise MappingRejected(
            f"Row 1 (the header) has column(s) the mapping does not cover: "
            f"{', '.join(repr(u) for u in unknown)}. Map each to a profile field, a "
            "subscription, or “ignore”.",
            code="unmapped_column",
            column=unknown[0],
        )
    fields = set()
    kinds = set()
    for name in names:
        if not name:
            continue
        target = columns[name]
        kind = target.get("to") if isinstance(target, dict) else None
        if kind not in MAPPING_TARGETS:
            raise MappingRejected(
                f"Column {name!r} is mapped to an unknown target {kind!r}.",
                code="bad_target",
                column=name,
            )
        if kind == "field":
            field = str(target.get("name") or "").strip()
            if not field or field == "subscriptions":
                raise MappingRejected(
                    f"Column {name!r} needs a profile field name.",
                    code="bad_target",
                    column=name,
                )
            fields.add(field)
        kinds.add(kind)
    carries = {
        "email": "email" in fields or "email_subscription" in kinds,
        "email_profile": "email" in fields,
        "phone": bool({"phone", "phones"} & fields) or "phone_subscription" in kinds,
        "profile_id": "profile_id" in fields,
        "custom": (field_name or "") in fields,
    }[matching]
    if not carries:
        wanted = {
            "email": "the profile field email or an email subscription",
            "email_profile": "the profile field email",
            "phone": "the profile field phones or a phone subscription",
            "profile_id": "the profile field profile_id",
            "custom": f"the profile field {field_name}",
        }[matching]
        raise MappingRejected(
            f"Matching {matching!r} needs a column mapped to {wanted}, inside each item's data.",
            code="matching_not_mapped",
        )


def prepare_import_rows(
    rows: Iterator[tuple[int, list[str]]],
    names: list[str],
    *,
    mapping: dict[str, Any],
    matching: str,
    field_name: str | None,
    chunks: ChunkWriter,
    preparation: Preparation,
) -> None:
    """Check an import file's rows and write its chunks of `{"data": {...}}` items."""
    columns = mapping["columns"]
    seen = SeenValues()
    for number, cells in rows:
        if not any(cells):
            continue
        preparation.row_read()
        if len(cells) > len(names) and any(cells[len(names) :]):
            preparation.invalid(number, f"{len(cells)} cells, but the header names {len(names)}")
            continue
        data, reason = _profile_data(names, cells, columns)
        if reason:
            preparation.invalid(number, reason)
            continue
        key = _import_matching_key(data, matching, field_name)
        if key is None:
            preparation.invalid(number, f"no value to match the profile by ({matching})")
            continue
        if not seen.add(key):
            preparation.rows_duplicate += 1
            continue
        _add_item(chunks, preparation, _item_bytes({"data": data}), number)
    if preparation.rows_read == 0:
        raise FileRejected("The file has a header but no rows.")


def _profile_data(
    names: list[str], cells: list[str], columns: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    data: dict[str, Any] = {}
    subscriptions: list[dict[str, Any]] = []
    for position, name in enumerate(names):
        if not name:
            continue
        value = cells[position] if position < len(cells) else ""
        target = columns[name]
        kind = target["to"]
        if kind == "ignore" or not value:
            continue
        if kind == "field":
            field = target["name"]
            if field == "email" and not EMAIL.match(value):
                return {}, f"{name}: not an email address: {value[:80]!r}"
            if field in ("phones", "phone"):
                compact = PHONE_PUNCTUATION.sub("", value)
                if not PHONE.match(compact):
                    return {}, f"{name}: not a phone number (10-15 digits): {value[:80]!r}"
                value = compact
            data[field] = value
        elif kind == "email_subscription":
            if not EMAIL.match(value):
                return {}, f"{name}: not an email address: {value[:80]!r}"
            subscriptions.append(_subscription("email", "email", value, target))
        elif kind == "phone_subscription":
            compact = PHONE_PUNCTUATION.sub("", value)
            if not PHONE.match(compact):
                return {}, f"{name}: not a phone number (10-15 digits): {value[:80]!r}"
            subscriptions.append(_subscription("phone", "phone", compact, target))
    if subscriptions:
        data["subscriptions"] = subscriptions
    return data, ""


def _subscription(channel: str, key: str, value: str, target: dict[str, Any]) -> dict[str, Any]:
    subscription: dict[str, Any] = {"channel": channel, key: value}
    if target.get("resource_id"):
        subscription["resource_id"] = int(target["resource_id"])
    return subscription


def _import_matching_key(data: dict[str, Any], matching: str, field_name: str | None) -> str | None:
    subscriptions = data.get("subscriptions") or []
    if matching in ("email", "email_profile"):
        email = data.get("email")
        if not email and matching == "email":
            email = next((s["email"] for s in subscriptions if s.get("email")), None)
        return email.casefold() if email else None
    if matching == "phone":
        phone = data.get("phones") or data.get("phone")
        if not phone:
            phone = next((s["phone"] for s in subscriptions if s.get("phone")), None)
        return phone.lstrip("+") if phone else None
    if matching == "profile_id":
        return data.get("profile_id") or None
    return data.get(field_name or "") or None
