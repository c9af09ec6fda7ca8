"""The Altcraft pages: register, upload → preview → confirm → progress; tenancy and roles."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from campaigns.altcraft_launches.models import AltcraftLaunch, AltcraftTrigger, LaunchState
from dashboard.runs.services import run_send

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


def test_upload_preview_confirm_and_progress(team, trigger, altcraft) -> None:
    client = team.client_for("marketer")
    content = b"email\na@example.com\nbad\na@example.com\nexample1@example.com\n"

    response = upload(client, trigger, content, content='{"page": "cart"}')

    assert response.status_code == 302, response.content.decode()[:2000]
    launch = AltcraftLaunch.objects.get()
    assert launch.state == LaunchState.PREVIEWED
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
    assert "1 profiles reached" in fragment.content.decode()


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


def test_a_pasted_list_is_a_launch_too(team, trigger) -> None:
    client = team.client_for("marketer")
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


def test_an_import_goes_through_the_mapping_step(team, trigger) -> None:
    client = team.client_for("marketer")
    response = upload(client, trigger, b"E-mail,Name\nann@example.com,Ann\n", kind="import")
    launch = AltcraftLaunch.objects.get()
    assert response["Location"] == url("altcraft_launch_mapping", launch.pk)
    page = client.get(response["Location"]).content.decode()
    assert 'value="email"' in page  # guessed from "E-mail"

    response = client.post(
        url("altcraft_launch_mapping", launch.pk),
        {"target_0": "field", "field_0": "email", "target_1": "field", "field_1": "_fname"},
    )
    launch.refresh_from_db()
    assert launch.state == LaunchState.PREVIEWED, launch.problem
    trigger.refresh_from_db()
    assert trigger.import_mapping["columns"]["Name"] == {"to": "field", "name": "_fname"}


def test_other_tenants_launches_are_404_and_approving_needs_an_operator(
    team, other_team, trigger
) -> None:
    from campaigns.altcraft_launches import services

    services.altcraft_settings_update(
        actor=services.Actor(user=team.admin.user),
        tenant=team.tenant,
        approval_required=True,
        retention_hours=24,
    )
    client = team.client_for("marketer")
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
    team, trigger, altcraft
) -> None:
    from django.test import Client

    from dashboard.models import Role
    from tests.factories import MembershipFactory, UserFactory

    upload(team.client_for("marketer"), trigger, b"E-mail\nann@example.com\n", kind="import")
    imported = AltcraftLaunch.objects.get()
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
