"""The Altcraft pages: register, upload → preview → confirm → progress; tenancy and roles."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from campaigns.altcraft_launches.models import AltcraftLaunch, AltcraftTrigger, LaunchState
from dashboard.runs.services import run_send
from tests.campaigns.altcraft_launches.conftest import csv_bytes, prepare, zip_bomb_xlsx
from tests.e2e.conftest import e2e_redis, wait_for, workers  # noqa: F401 - fixtures

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]


def url(name: str, *args, slug: str = "acme") -> str:
    return reverse(name, args=[slug, *args])


def upload(client, trigger, file_content: bytes, *, kind: str = "start_batch", **fields):
    data = {
        "idempotency_key": fields.pop("key", "k-" + str(len(file_content)) + kind),
        "trigger": trigger.pk,
        "matching": "email",
        "kind": kind,
        "file": SimpleUploadedFile("list.csv", file_content, content_type="text/csv"),
        **fields,
    }
    return client.post(url("altcraft_launch_new") + f"?kind={kind}", data)


def test_an_operator_registers_a_trigger_and_a_marketer_cannot(team, connection) -> None:
    data = {
        "connection": connection.pk,
        "trigger_id": 96,
        "name": "Registration form",
        "default_matching": "email",
        "content_fields": "page, promo",
    }
    assert (
        team.client_for("marketer").post(url("altcraft_trigger_register"), data).status_code == 403
    )

    response = team.client_for("operator").post(url("altcraft_trigger_register"), data)

    assert response.status_code == 302
    trigger = AltcraftTrigger.objects.get(trigger_id=96)
    assert trigger.content_fields == ["page", "promo"]
    page = team.client_for("auditor").get(url("altcraft_home"))
    assert "Registration form" in page.content.decode()


def test_upload_preview_confirm_and_progress(team, trigger, altcraft, read_by_worker) -> None:
    client = team.client_for("marketer")
    content = b"email\na@example.com\nbad\na@example.com\nexample1@example.com\n"

    with read_by_worker():
        response = upload(client, trigger, content, content='{"page": "cart"}')

        # The request stored the file and queued its reading: the page says so and polls.
        assert response.status_code == 302, response.content.decode()[:2000]
        launch = AltcraftLaunch.objects.get()
        assert launch.state == LaunchState.UPLOADED
        page = client.get(response["Location"]).content.decode()
        assert 'id="launch-reading"' in page and 'id="rows-valid"' not in page
        fragment = client.get(
            response["Location"], HTTP_HX_REQUEST="true", HTTP_HX_TARGET="launch-reading"
        )
        assert 'id="reading-rows">0<' in fragment.content.decode()
    launch.refresh_from_db()
    assert launch.state == LaunchState.PREVIEWED
    fragment = client.get(
        response["Location"], HTTP_HX_REQUEST="true", HTTP_HX_TARGET="launch-reading"
    )
    assert fragment["HX-Refresh"] == "true"  # read: the whole page shows the preview
    page = client.get(response["Location"]).content.decode()
    assert re.search(r'id="rows-valid"><strong>2<', page)
    assert "not an email address: &#x27;bad&#x27;" in page
    assert altcraft.received == []

    response = client.post(
        url("altcraft_launch_confirm", launch.pk), {"sha256": launch.source_sha256}
    )
    assert response.status_code == 302
    launch.refresh_from_db()
    assert launch.state == LaunchState.SENDING
    [chunk] = launch.chunks.all()
    fragment = client.get(url("altcraft_launch_detail", launch.pk), HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200 and "Queued" in fragment.content.decode()

    run_send(run_id=chunk.run_id)
    fragment = client.get(url("altcraft_launch_detail", launch.pk), HTTP_HX_REQUEST="true")
    assert fragment.status_code == 286  # htmx: stop polling
    assert 'id="launch-done"' in fragment.content.decode()
    assert "1 profile reached" in fragment.content.decode()
    # Two rows sent, one matched a profile: said, in a warning tone, not a green "Done".
    assert (
        '<span class="badge warn">Sent</span> <span class="outcome-detail">sent; 1 of 2 matched'
        " a profile</span>" in fragment.content.decode()
    )
    assert ">Done<" not in fragment.content.decode()


def test_content_that_is_not_a_json_object_is_a_form_error(team, trigger, upload_dir) -> None:
    response = upload(team.client_for("marketer"), trigger, b"email\na@b.co\n", content="[1, 2]")

    assert response.status_code == 400
    assert "Must be a JSON object" in response.content.decode()
    assert AltcraftLaunch.objects.count() == 0
    assert not upload_dir.exists() or list(upload_dir.iterdir()) == []


def test_a_file_over_the_upload_limit_is_refused_clearly(team, trigger, settings) -> None:
    settings.ALTCRAFT_UPLOAD_MAX_BYTES = 100
    response = upload(team.client_for("marketer"), trigger, b"email\n" + b"a@example.com\n" * 20)

    assert response.status_code == 400
    assert "The file is too large" in response.content.decode()
    assert AltcraftLaunch.objects.count() == 0


def test_a_pasted_list_is_a_launch_too(team, trigger, read_by_worker) -> None:
    client = team.client_for("marketer")
    with read_by_worker():
        response = client.post(
            url("altcraft_launch_new"),
            {
                "idempotency_key": "paste-1",
                "trigger": trigger.pk,
                "matching": "email",
                "pasted": "a@example.com\nb@example.com\n",
            },
        )
    assert response.status_code == 302
    assert AltcraftLaunch.objects.get().rows_valid == 2


def test_an_import_goes_through_the_mapping_step(team, trigger, read_by_worker) -> None:
    client = team.client_for("marketer")
    response = upload(client, trigger, b"E-mail,Name\nann@example.com,Ann\n", kind="import")
    launch = AltcraftLaunch.objects.get()
    assert response["Location"] == url("altcraft_launch_mapping", launch.pk)
    page = client.get(response["Location"]).content.decode()
    assert 'value="email"' in page  # guessed from "E-mail"

    with read_by_worker():
        response = client.post(
            url("altcraft_launch_mapping", launch.pk),
            {"target_0": "field", "field_0": "email", "target_1": "field", "field_1": "_fname"},
        )
        assert response["Location"] == url("altcraft_launch_detail", launch.pk)
        # Queued: the mapping page is not offered again while a worker reads the file.
        assert client.get(url("altcraft_launch_mapping", launch.pk)).status_code == 302
    launch.refresh_from_db()
    assert launch.state == LaunchState.PREVIEWED, launch.problem
    trigger.refresh_from_db()
    assert trigger.import_mapping["columns"]["Name"] == {"to": "field", "name": "_fname"}
    from dashboard.models import AuditEvent

    queued = AuditEvent.objects.get(action="altcraft.launch_reading_queued")
    assert (queued.actor_id, queued.summary) == (team.marketer.user.pk, {"mapped_columns": 2})


def test_other_tenants_launches_are_404_and_approving_needs_an_operator(
    team, other_team, trigger, read_by_worker
) -> None:
    from campaigns.altcraft_launches import services

    services.altcraft_settings_update(
        actor=services.Actor(user=team.admin.user),
        tenant=team.tenant,
        approval_required=True,
        retention_hours=24,
    )
    client = team.client_for("marketer")
    with read_by_worker():
        upload(client, trigger, b"email\na@example.com\n")
    launch = AltcraftLaunch.objects.get()
    client.post(url("altcraft_launch_confirm", launch.pk), {"sha256": launch.source_sha256})
    launch.refresh_from_db()
    assert launch.state == LaunchState.AWAITING_APPROVAL

    outsider = other_team.client_for("admin")
    assert outsider.get(url("altcraft_launch_detail", launch.pk, slug="other")).status_code == 404
    approve = url("altcraft_launch_approve", launch.pk)
    assert client.post(approve, {"sha256": launch.source_sha256}).status_code == 403
    team.client_for("operator").post(approve, {"sha256": launch.source_sha256})
    launch.refresh_from_db()
    assert launch.state == LaunchState.SENDING
    assert launch.approved_by == team.operator.user


def test_a_2_gb_upload_is_refused_before_its_body_is_read(team, trigger) -> None:
    from django.test import RequestFactory

    from campaigns.altcraft_launches.views import launch_new

    request = RequestFactory().post(
        url("altcraft_launch_new"), data=b"", content_type="multipart/form-data; boundary=x"
    )
    request.META["CONTENT_LENGTH"] = str(2 * 1024**3)
    request.user = team.marketer.user
    request.session = {}
    request.htmx = False

    response = launch_new(request, tenant_slug="acme")

    assert response.status_code == 413
    assert "The file is too large (2,147.5 MB)" in response.content.decode()
    assert AltcraftLaunch.objects.count() == 0


def test_an_import_shows_each_tasks_progress_live(team, trigger) -> None:
    from campaigns.altcraft_launches import services
    from dashboard.runs.models import Run

    client = team.client_for("marketer")
    upload(client, trigger, b"Email\nann@example.com\n", kind="import")
    launch = AltcraftLaunch.objects.get()
    launch = services.launch_prepare(
        actor=services.Actor(user=team.marketer.user),
        launch=launch,
        mapping={"columns": {"Email": {"to": "field", "name": "email"}}},
    )
    client.post(url("altcraft_launch_confirm", launch.pk), {"sha256": launch.source_sha256})
    [chunk] = launch.chunks.all()
    Run.objects.filter(pk=chunk.run_id).update(state="accepted", progress=40)

    fragment = client.get(url("altcraft_launch_detail", launch.pk), HTTP_HX_REQUEST="true")

    assert fragment.status_code == 200  # still polling
    html = fragment.content.decode()
    assert 'id="overall-percent">40%' in html
    assert '<progress max="100" value="40">' in html


def test_a_nul_in_a_field_of_the_upload_form_is_refused_and_nothing_kept(
    team, trigger, upload_dir
) -> None:
    response = upload(
        team.client_for("marketer"), trigger, b"email\na@example.com\n", field_name="x\x00y"
    )

    assert response.status_code == 400
    assert "This input cannot be used" in response.content.decode()
    assert "A form field contains" in response.content.decode()
    assert AltcraftLaunch.objects.count() == 0
    assert not upload_dir.exists() or list(upload_dir.iterdir()) == []


def test_another_marketer_can_neither_map_confirm_discard_nor_resend_a_launch(
    team, trigger, altcraft, read_by_worker
) -> None:
    from django.test import Client

    from dashboard.models import Role
    from tests.factories import MembershipFactory, UserFactory

    upload(team.client_for("marketer"), trigger, b"E-mail\nann@example.com\n", kind="import")
    imported = AltcraftLaunch.objects.get()
    with read_by_worker():
        upload(team.client_for("marketer"), trigger, b"email\na@example.com\n")
    launch = AltcraftLaunch.objects.exclude(pk=imported.pk).get()
    user = UserFactory(username="max")
    MembershipFactory(tenant=team.tenant, user=user, role=Role.MARKETER)
    client = Client()
    client.force_login(user)

    mapping = client.get(url("altcraft_launch_mapping", imported.pk))
    assert mapping.status_code == 403
    assert "Only the uploader (mia) can map" in mapping.content.decode()
    page = client.get(url("altcraft_launch_detail", launch.pk)).content.decode()
    assert 'id="launch-confirm"' not in page
    assert url("altcraft_launch_discard", launch.pk) not in page
    for action in ("altcraft_launch_confirm", "altcraft_launch_discard"):
        response = client.post(
            url(action, launch.pk), {"sha256": launch.source_sha256}, follow=True
        )
        assert "Only the uploader" in response.content.decode()
    launch.refresh_from_db()
    assert launch.state == LaunchState.PREVIEWED and altcraft.received == []

    team.client_for("marketer").post(
        url("altcraft_launch_confirm", launch.pk), {"sha256": launch.source_sha256}
    )
    [chunk] = launch.chunks.all()
    from dashboard.vendors.sandbox import Fault

    altcraft.inject_fault("start_batch", Fault.SERVER_ERROR, status=400)
    run_send(run_id=chunk.run_id)
    page = client.get(url("altcraft_launch_detail", launch.pk)).content.decode()
    assert url("altcraft_launch_retry", launch.pk) not in page
    uploaders = team.client_for("marketer").get(url("altcraft_launch_detail", launch.pk))
    assert url("altcraft_launch_retry", launch.pk) in uploaders.content.decode()
    response = client.post(
        url("altcraft_launch_retry", launch.pk), {"sha256": launch.source_sha256}, follow=True
    )
    assert "Only the uploader or an operator" in response.content.decode()
    chunk.refresh_from_db()
    assert chunk.retries == 0


def test_an_xlsx_zip_bomb_declaring_its_size_is_refused_by_the_request_at_once(
    team, trigger, altcraft, settings, upload_dir
) -> None:
    # The request reads the header only (for the column to send): the workbook's declared
    # size is over the limit before anything is unpacked, so it is a form error, nothing kept.
    settings.ALTCRAFT_XLSX_MAX_UNPACKED_BYTES = 50_000_000
    bomb = zip_bomb_xlsx(2_000_000)
    response = team.client_for("marketer").post(
        url("altcraft_launch_new") + "?kind=start_batch",
        {
            "idempotency_key": "bomb",
            "trigger": trigger.pk,
            "matching": "email",
            "kind": "start_batch",
            "file": SimpleUploadedFile("list.xlsx", bomb, content_type="application/zip"),
        },
    )

    assert response.status_code == 400
    assert "The workbook unpacks to more than 50 MB, the most an XLSX may hold." in (
        response.content.decode()
    )
    assert AltcraftLaunch.objects.count() == 0
    assert list(upload_dir.iterdir()) == []
    assert altcraft.received == []


@pytest.mark.parametrize(
    ("setting", "limit", "problem"),
    [
        (
            "ALTCRAFT_UPLOAD_MAX_ROWS",
            1000,
            "The file has more than 1,000 rows (the header included), the most a list may have.",
        ),
    ],
)
def test_an_xlsx_zip_bomb_is_read_off_the_request_and_refused_at_its_limit(
    team, trigger, altcraft, settings, upload_dir, read_by_worker, setting, limit, problem
) -> None:
    # 2 million rows: ~150 MB unpacked from a few hundred KB (the review's bomb held a
    # request for 66 s).
    setattr(settings, setting, limit)
    bomb = zip_bomb_xlsx(2_000_000)
    assert len(bomb) < 1_000_000
    client = team.client_for("marketer")

    with read_by_worker():
        response = client.post(
            url("altcraft_launch_new") + "?kind=start_batch",
            {
                "idempotency_key": "bomb",
                "trigger": trigger.pk,
                "matching": "email",
                "kind": "start_batch",
                "file": SimpleUploadedFile("list.xlsx", bomb, content_type="application/zip"),
            },
        )
        # The request stored the file and returned: nothing of it was read yet.
        assert response.status_code == 302
        launch = AltcraftLaunch.objects.get()
        assert launch.state == LaunchState.UPLOADED and launch.rows_read == 0
        assert response["Location"] == url("altcraft_launch_detail", launch.pk)

    launch.refresh_from_db()
    assert launch.state == LaunchState.DISCARDED
    assert problem in launch.problem
    assert launch.chunks.count() == 0 and not launch.chunks_path
    assert list(upload_dir.iterdir()) == []  # the upload and any partial chunks are gone
    assert altcraft.received == []
    page = client.get(response["Location"]).content.decode()
    assert problem in page


@pytest.mark.slow
def test_a_zip_bomb_posted_to_the_page_is_refused_by_the_request_at_once(
    team, trigger, altcraft, upload_dir
) -> None:
    # At the default limits (256 MiB unpacked, 1,048,576 rows), with a bomb that declares it
    # unpacks to more than the limit (4 million rows, ~276 MB). The request reads the header
    # for the column to send: the declared size refuses it before anything is unpacked.
    bomb = zip_bomb_xlsx(4_000_000)
    assert len(bomb) < 1_000_000
    client = team.client_for("marketer")

    response = client.post(
        url("altcraft_launch_new") + "?kind=start_batch",
        {
            "idempotency_key": "bomb",
            "trigger": trigger.pk,
            "matching": "email",
            "kind": "start_batch",
            "file": SimpleUploadedFile("list.xlsx", bomb, content_type="application/zip"),
        },
    )

    assert response.status_code == 400
    assert "The workbook unpacks to more than 268 MB, the most an XLSX may hold." in (
        response.content.decode()
    )
    assert AltcraftLaunch.objects.count() == 0
    assert list(upload_dir.iterdir()) == []
    assert altcraft.received == []


def test_the_mapping_page_unpacks_an_import_workbook_only_to_its_header(
    team, trigger, monkeypatch
) -> None:
    # Without its size declared, openpyxl would parse the whole sheet once just to size it:
    # 150 MB here, in the web request.
    from campaigns.altcraft_launches import reading

    client = team.client_for("marketer")
    response = client.post(
        url("altcraft_launch_new") + "?kind=import",
        {
            "idempotency_key": "bomb-import",
            "trigger": trigger.pk,
            "matching": "email",
            "kind": "import",
            "file": SimpleUploadedFile("profiles.xlsx", zip_bomb_xlsx(2_000_000, dimension=False)),
        },
    )
    unpacked = []
    counted_read = reading._CountedMember.read

    def read(self, size=-1):
        data = counted_read(self, size)
        unpacked.append(len(data))
        return data

    monkeypatch.setattr(reading._CountedMember, "read", read)

    page = client.get(response["Location"])

    assert page.status_code == 200
    assert 'value="email"' in page.content.decode()  # the header's one column
    assert sum(unpacked) < 1_000_000


def test_the_launch_list_says_a_launch_reached_nobody(team, trigger) -> None:
    from campaigns.altcraft_launches import services
    from tests.campaigns.altcraft_launches.conftest import csv_bytes, prepare, send_all

    launch = prepare(team.marketer, trigger, csv_bytes("email", ["nobody@example.com"]))
    launch = services.launch_confirm(
        actor=services.Actor(user=team.marketer.user),
        launch=launch,
        sha256_seen=launch.source_sha256,
    )
    send_all(launch)

    html = team.client_for("auditor").get(url("altcraft_home")).content.decode()

    listing = html[html.index('id="altcraft-launches"') :]
    assert (
        '<span class="badge warn">Sent</span> <span class="outcome-detail">sent; 0 of 1 matched'
        " a profile</span>" in listing
    )


def test_large_counts_have_thousands_separators_and_one_is_singular(team, trigger) -> None:
    launch = prepare(team.marketer, trigger, csv_bytes("email", ["a@example.com"]))
    assert launch.state == LaunchState.PREVIEWED
    page = team.client_for("marketer").get(url("altcraft_launch_detail", launch.pk)).content
    assert ">Send to 1 recipient</button>" in page.decode()

    AltcraftLaunch.objects.filter(pk=launch.pk).update(
        rows_read=221_000, rows_valid=220_734, rows_invalid=1_266, rows_duplicate=1_000
    )
    page = (
        team.client_for("marketer").get(url("altcraft_launch_detail", launch.pk)).content.decode()
    )
    assert '<dd id="rows-read">221,000</dd>' in page
    assert '<dd id="rows-valid"><strong>220,734</strong></dd>' in page
    assert '<dd id="rows-invalid">1,266</dd>' in page
    assert ">Send to 220,734 recipients</button>" in page
    home = team.client_for("marketer").get(url("altcraft_home")).content.decode()
    assert "<td>220,734</td>" in home


CRM_EXPORT = (
    b"first_name,email,page\nAnn,ann@example.com,cart\nBob,,home\nCid,example1@example.com,cart\n"
)


def test_a_crm_export_picks_its_column_previews_what_is_ignored_and_skips_empty_rows(
    team, trigger, altcraft, read_by_worker
) -> None:
    client = team.client_for("marketer")

    response = upload(client, trigger, CRM_EXPORT)

    # Several columns: nothing is read until the uploader says which one is sent.
    launch = AltcraftLaunch.objects.get()
    assert response.status_code == 302
    assert response["Location"] == url("altcraft_launch_column", launch.pk)
    assert launch.state == LaunchState.UPLOADED and not launch.is_reading
    detail = client.get(url("altcraft_launch_detail", launch.pk)).content.decode()
    assert 'id="launch-choose-column"' in detail and 'id="launch-reading"' not in detail
    page = client.get(response["Location"]).content.decode()
    for name in ("first_name", "email", "page"):
        assert f'value="{name}"' in page
    # The column named like the matching kind is offered first.
    assert re.search(r'<input type="radio" name="column" value="email"[^>]*checked', page)

    refused = client.post(response["Location"], {"column": "phone", "matching": "email"})
    assert refused.status_code == 400
    assert "Select a valid choice" in refused.content.decode()
    launch.refresh_from_db()
    assert launch.column == "" and launch.reading_queued_at is None

    with read_by_worker():
        chosen = client.post(response["Location"], {"column": "email", "matching": "email"})
    assert chosen.status_code == 302 and chosen["Location"] == url(
        "altcraft_launch_detail", launch.pk
    )
    launch.refresh_from_db()
    assert launch.state == LaunchState.PREVIEWED, launch.problem
    page = client.get(chosen["Location"]).content.decode()
    assert '<code id="launch-column">email</code>' in page
    assert '<dt>Columns not sent</dt><dd id="ignored-columns">first_name, page</dd>' in page
    assert '<span id="rows-empty">1</span>' in page and '<span id="empty-rows">3</span>' in page
    assert 'id="skip-empty" required' in page
    assert "Skip the 1 empty row" in page

    # Confirming without deciding about the empty row sends nothing and says why.
    answer = client.post(
        url("altcraft_launch_confirm", launch.pk), {"sha256": launch.source_sha256}, follow=True
    )
    assert "1 row (row 3) has no value in the column &#x27;email&#x27;" in answer.content.decode()
    launch.refresh_from_db()
    assert launch.state == LaunchState.PREVIEWED

    client.post(
        url("altcraft_launch_confirm", launch.pk),
        {"sha256": launch.source_sha256, "skip_empty": "on"},
    )
    launch.refresh_from_db()
    assert launch.state == LaunchState.SENDING
    run_send(run_id=launch.chunks.get().run_id)
    [received] = altcraft.received_on("start_batch")
    assert '"data":[{"email":"ann@example.com"},{"email":"example1@example.com"}]' in (
        received.body
    )


def test_a_header_naming_a_column_twice_is_a_form_error_and_nothing_is_kept(
    team, trigger, upload_dir
) -> None:
    response = upload(team.client_for("marketer"), trigger, b"email,page,page\na@example.com,x,y\n")

    assert response.status_code == 400
    assert (
        "Row 1 (the header) names the column &#x27;page&#x27; more than once (columns 2 and 3)"
        in response.content.decode()
    )
    assert AltcraftLaunch.objects.count() == 0
    assert list(upload_dir.iterdir()) == []


def test_only_the_uploader_chooses_the_column_and_a_chosen_one_is_not_chosen_again(
    team, trigger, read_by_worker
) -> None:
    upload(team.client_for("marketer"), trigger, CRM_EXPORT)
    launch = AltcraftLaunch.objects.get()

    other = team.client_for("operator").post(
        url("altcraft_launch_column", launch.pk), {"column": "email", "matching": "email"}
    )
    assert other.status_code == 403
    launch.refresh_from_db()
    assert launch.column == ""

    client = team.client_for("marketer")
    with read_by_worker():
        client.post(
            url("altcraft_launch_column", launch.pk), {"column": "email", "matching": "email"}
        )
    again = client.post(
        url("altcraft_launch_column", launch.pk), {"column": "page", "matching": "email"}
    )
    assert again.status_code == 302  # read already: back to the launch, nothing changed
    launch.refresh_from_db()
    assert launch.column == "email" and launch.state == LaunchState.PREVIEWED


def test_the_column_page_of_another_tenant_is_404(team, trigger, other_team) -> None:
    upload(team.client_for("marketer"), trigger, CRM_EXPORT)
    launch = AltcraftLaunch.objects.get()

    response = other_team.client_for("marketer").get(
        url("altcraft_launch_column", launch.pk, slug=other_team.tenant.slug)
    )

    assert response.status_code == 404
