"""Bad input: every file that cannot be sent says why (with its row number) and sends nothing."""

from __future__ import annotations

import io

import pytest

from campaigns.altcraft_launches.models import LaunchState
from tests.campaigns.altcraft_launches.conftest import csv_bytes, prepare

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "The file is empty."),
        (b"email\n", "The file has a header but no rows."),
        (b"a@example.com\nb@example.com\n", "no header row: row 1 holds values"),
        (b"name\nAnn\n", "Row 1 (the header) has no column named 'email'"),
        (
            b"email,page,email\na@example.com,p,b@example.com\n",
            "names the column 'email' more than once (columns 1 and 3)",
        ),
        (b"name,email\nAnn,\nBob,\n", "No row of the file can be sent"),
        ("email\na@example.com\n".encode("utf-16"), "UTF-16"),
        (b"email\na@example.com\n\x81\x82\x83\x84\x85\n", "is not UTF-8"),
        (b"email\nnot-an-email\n", "No row of the file can be sent"),
        (b'email\n"a@example.com\n', "cannot be read as CSV"),
    ],
)
def test_files_that_cannot_be_sent_are_refused_with_the_reason(
    team, trigger, altcraft, content: bytes, problem: str
) -> None:
    launch = prepare(team.marketer, trigger, content)

    assert launch.state == LaunchState.DISCARDED
    assert problem in launch.problem
    assert launch.chunks.count() == 0
    assert altcraft.received == []


def test_a_row_larger_than_the_body_limit_names_its_row(team, trigger, connection) -> None:
    connection.options = {"body_limit_bytes": 2000}
    connection.save()
    trigger.connection.refresh_from_db()
    content = csv_bytes("Custom_ID", ["003", "9" * 1990, "004"])

    launch = prepare(team.marketer, trigger, content, matching="custom", field_name="Custom_ID")

    assert launch.state == LaunchState.DISCARDED
    assert "Row 3 alone makes a request of" in launch.problem
    assert "over the limit of 1,998 bytes" in launch.problem


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1251"])
def test_utf8_bom_and_cp1251_are_detected(team, trigger, encoding: str) -> None:
    launch = prepare(
        team.marketer,
        trigger,
        csv_bytes("email", ["иван@example.com", "b@example.com"], encoding=encoding),
    )

    assert launch.state == LaunchState.PREVIEWED, launch.problem
    assert launch.encoding == encoding
    assert launch.rows_valid == 2


def test_the_preview_counts_invalid_rows_with_numbers_and_duplicates(team, trigger) -> None:
    content = csv_bytes(
        "Email",
        ["a@example.com", "bad", "", "A@Example.com", "b@example.com", "c@@", "b@example.com"],
    )

    launch = prepare(team.marketer, trigger, content)

    assert launch.state == LaunchState.PREVIEWED
    assert (launch.rows_read, launch.rows_valid) == (6, 2)
    assert (launch.rows_invalid, launch.rows_duplicate) == (2, 2)
    assert launch.invalid_samples == [
        {"row": 3, "reason": "not an email address: 'bad'"},
        {"row": 7, "reason": "not an email address: 'c@@'"},
    ]
    assert launch.chunks.count() == 1


def test_semicolon_csv_and_phone_matching(team, trigger) -> None:
    content = csv_bytes("phone", ["+7 (900) 000-00-00", "12345", "79000000000"])

    launch = prepare(team.marketer, trigger, content, matching="phone")

    assert (launch.rows_valid, launch.rows_invalid, launch.rows_duplicate) == (1, 1, 1)
    assert launch.invalid_samples[0]["row"] == 3


def test_xlsx_files_are_read(team, trigger) -> None:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["email"])
    for value in ("a@example.com", "b@example.com", "nope"):
        sheet.append([value])
    buffer = io.BytesIO()
    workbook.save(buffer)

    launch = prepare(team.marketer, trigger, buffer.getvalue(), name="list.xlsx")

    assert launch.encoding == "xlsx"
    assert (launch.rows_valid, launch.rows_invalid) == (2, 1)
    assert launch.invalid_samples == [{"row": 4, "reason": "not an email address: 'nope'"}]


def test_a_bad_byte_mid_file_names_its_own_line(team, trigger, altcraft) -> None:
    # The text reader decodes kilobytes ahead of the csv reader: the row it was on is not where
    # the bad byte is (it named row 2732 here, 2892 in the report, for a byte on line 3002).
    lines = [f"person{index:05d}@example.com" for index in range(1, 5000)]
    lines[3000] = "caf\xe9@example.com"  # line 3002 of the file: the header is line 1
    content = b"email\n" + "\n".join(lines).encode("utf-8").replace(b"\xc3\xa9", b"\xe9") + b"\n"

    launch = prepare(team.marketer, trigger, content)

    assert launch.state == LaunchState.DISCARDED
    assert "Line 3002 is not valid utf-8 (a byte 0xe9)" in launch.problem
    assert altcraft.received == []


def test_an_xlsx_is_read_across_many_stored_segments(team, trigger) -> None:
    # zipfile seeks back and forth in the stored (encrypted) file: here across ~20 segments.
    import uuid

    import openpyxl

    from campaigns.altcraft_launches import services, storage
    from tests.campaigns.altcraft_launches.conftest import actor_of

    workbook = openpyxl.Workbook()
    workbook.active.append(["email"])
    for index in range(2000):
        workbook.active.append([f"person{index:04d}.{uuid.uuid4().hex}@example.com"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    writer = storage.EncryptedWriter(storage.new_path("upload"), segment_bytes=2048)
    writer.write(buffer.getvalue())
    writer.close()
    assert writer.size > 20 * 2048
    launch = services.launch_create(
        actor=actor_of(team.marketer),
        trigger=trigger,
        kind="start_batch",
        upload=services.StoredUpload(path=writer.relative, size=writer.size, sha256=writer.sha256),
        source_name="list.xlsx",
        parameters={"matching": "email"},
        idempotency_key=uuid.uuid4().hex,
    )

    launch = services.launch_prepare(actor=actor_of(team.marketer), launch=launch)

    assert launch.state == LaunchState.PREVIEWED, launch.problem
    assert launch.rows_valid == 2000


def test_a_list_over_the_row_limit_is_refused_with_the_limit(
    team, trigger, altcraft, settings
) -> None:
    settings.ALTCRAFT_UPLOAD_MAX_ROWS = 100
    emails = [f"person{index:03d}@example.com" for index in range(100)]

    launch = prepare(team.marketer, trigger, csv_bytes("email", emails))

    assert launch.state == LaunchState.DISCARDED
    assert launch.problem == (
        "The file has more than 100 rows (the header included), the most a list may have. "
        "Split it into several files. Nothing was sent."
    )
    assert launch.chunks.count() == 0
    assert altcraft.received == []
    assert prepare(team.marketer, trigger, csv_bytes("email", emails[:99])).rows_valid == 99


def test_a_workbook_with_too_many_shared_texts_is_refused_before_they_fill_memory(
    team, trigger, altcraft, settings
) -> None:
    from tests.campaigns.altcraft_launches.conftest import zip_bomb_xlsx

    settings.ALTCRAFT_UPLOAD_MAX_ROWS = 1000

    launch = prepare(team.marketer, trigger, zip_bomb_xlsx(10, shared_texts=5000), name="a.xlsx")

    assert launch.state == LaunchState.DISCARDED
    assert launch.problem.startswith(
        "The workbook's table of texts (shared strings) holds more than 1,000 texts"
    )
    assert altcraft.received == []
    fitting = prepare(team.marketer, trigger, zip_bomb_xlsx(10, shared_texts=900), name="b.xlsx")
    assert (fitting.rows_valid, fitting.rows_duplicate) == (1, 9)


def test_a_workbook_without_its_size_declared_is_unpacked_once(team, trigger, settings) -> None:
    # openpyxl parses such a sheet whole to size it, then again for its rows: the second pass
    # must not count twice against the limit (nor take twice the time).
    from tests.campaigns.altcraft_launches.conftest import zip_bomb_xlsx

    workbook = zip_bomb_xlsx(20_000, dimension=False)  # ~1.4 MB unpacked
    settings.ALTCRAFT_XLSX_MAX_UNPACKED_BYTES = 2_000_000

    launch = prepare(team.marketer, trigger, workbook, name="list.xlsx")

    assert launch.state == LaunchState.PREVIEWED, launch.problem
    assert (launch.rows_read, launch.rows_valid, launch.rows_duplicate) == (20_000, 1, 19_999)
