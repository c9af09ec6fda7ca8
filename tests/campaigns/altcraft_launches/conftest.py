"""Fixtures for Altcraft launches: an Altcraft connection to the sandbox, a registered trigger,
uploads stored in a temporary directory, and helpers that send a launch's chunks the way a
worker does (run_send / run_poll called directly)."""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any

import pytest

from campaigns.altcraft_launches import services
from dashboard.audit.trail import Actor


@pytest.fixture(autouse=True)
def upload_dir(settings, tmp_path):
    settings.ALTCRAFT_UPLOAD_DIR = tmp_path / "uploads"
    return settings.ALTCRAFT_UPLOAD_DIR


@pytest.fixture
def read_by_worker(django_capture_on_commit_callbacks, monkeypatch):
    """A block after which the readings its requests queued on commit run, as a worker runs
    them: after the response, not inside the request. (The task's body is called directly:
    Celery's eager mode would close the test's database connection after the task.)"""
    from campaigns.altcraft_launches import tasks

    def run_now(args=None, kwargs=None, **options):
        tasks.prepare_launch(*(args or ()), **(kwargs or {}))

    @contextlib.contextmanager
    def block():
        with monkeypatch.context() as patched:
            patched.setattr(tasks.prepare_launch, "apply_async", run_now)
            with django_capture_on_commit_callbacks(execute=True):
                yield

    return block


@pytest.fixture
def altcraft(sandboxes):
    return sandboxes["altcraft"]


@pytest.fixture
def connection(team, sandbox_connection):
    return sandbox_connection(team.tenant, "altcraft", name="Altcraft sandbox")


@pytest.fixture
def trigger(team, connection):
    return services.trigger_register(
        actor=Actor(user=team.admin.user),
        tenant=team.tenant,
        connection=connection,
        trigger_id=8,
        name="Abandoned cart",
        content_fields=["page"],
    )


def actor_of(membership) -> Actor:
    return Actor(user=membership.user)


def csv_bytes(header: str, values: list[str], *, encoding: str = "utf-8") -> bytes:
    return ("\n".join([header, *values]) + "\n").encode(encoding)


def prepare(
    membership,
    trigger,
    file_content: bytes,
    *,
    name: str = "recipients.csv",
    kind: str = "start_batch",
    mapping: dict | None = None,
    column: str | None = None,
    **parameters: Any,
):
    """Upload `content` and read it (a bulk launch: sending `column`, by default the one named
    like the matching kind): the preview (a launch in previewed or discarded)."""
    upload = services.upload_store(pieces=[file_content])
    launch = services.launch_create(
        actor=actor_of(membership),
        trigger=trigger,
        kind=kind,
        upload=upload,
        source_name=name,
        parameters={"matching": "email", **parameters},
        idempotency_key=uuid.uuid4().hex,
    )
    return services.launch_prepare(
        actor=actor_of(membership), launch=launch, mapping=mapping, column=column
    )


def send_all(launch) -> list[str]:
    """Send each chunk's current run once, as a worker would; the outcomes."""
    from dashboard.runs.services import run_send

    outcomes = []
    for chunk in launch.chunks.order_by("number"):
        if chunk.run_id is not None:
            outcomes.append(run_send(run_id=chunk.run_id))
    return outcomes


def received_values(altcraft, route: str = "start_batch") -> list[str]:
    """Every matching value the sandbox received (processed requests only)."""
    values = []
    for received in altcraft.received_on(route):
        if not received.processed:
            continue
        for item in json.loads(received.body)["data"]:
            values.append(
                item.get("email") or item.get("field_value") or item.get("data", {}).get("email")
            )
    return values


def zip_bomb_xlsx(rows: int, *, dimension: bool = True, shared_texts: int = 0) -> bytes:
    """A workbook of `rows` identical email rows: under a megabyte packed, ~70 bytes a row
    unpacked (the sheet XML is written as a stream). `dimension`: its size declared first, as
    Excel does; `shared_texts`: a shared-strings table of that many short texts besides."""
    import io
    import zipfile

    namespace = b'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    strings_type = (
        '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats'
        '-officedocument.spreadsheetml.sharedStrings+xml"/>'
    )
    strings_relation = (
        '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        'relationships/sharedStrings" Target="sharedStrings.xml"/>'
    )
    parts = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org'
            '/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.'
            'openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="app'
            'lication/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.op'
            'enxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/w'
            'orksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spr'
            f'eadsheetml.worksheet+xml"/>{strings_type if shared_texts else ""}</Types>'
        ),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlfo'
            'rmats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.o'
            'penxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workb'
            'ook.xml"/></Relationships>'
        ),
        "xl/workbook.xml": (
            '<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats'
            '.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocum'
            'ent/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></shee'
            "ts></workbook>"
        ),
        "xl/_rels/workbook.xml.rels": (
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlfo'
            'rmats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.o'
            'penxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sh'
            f'eet1.xml"/>{strings_relation if shared_texts else ""}</Relationships>'
        ),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, text in parts.items():
            archive.writestr(name, text)
        if shared_texts:
            archive.writestr(
                "xl/sharedStrings.xml",
                b'<?xml version="1.0" encoding="UTF-8"?><sst %s>%s</sst>'
                % (namespace, b"<si><t>ab</t></si>" * shared_texts),
            )
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            size = b'<dimension ref="A1:A%d"/>' % (rows + 1) if dimension else b""
            sheet.write(
                b'<?xml version="1.0" encoding="UTF-8"?><worksheet %s>%s<sheetData>'
                b'<row><c t="inlineStr"><is><t>email</t></is></c></row>' % (namespace, size)
            )
            row = b'<row><c t="inlineStr"><is><t>same.person@example.com</t></is></c></row>'
            for _ in range(rows // 10_000):
                sheet.write(row * 10_000)
            sheet.write(row * (rows % 10_000) + b"</sheetData></worksheet>")
    return buffer.getvalue()
