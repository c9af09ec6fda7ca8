"""The Single sign-on page: an admin maps groups to roles; others cannot; bad input is a form
error that changes nothing; it says that hand-made memberships are left alone."""

from __future__ import annotations

import pytest

from dashboard.models import AuditEvent, Role
from dashboard.sso.models import SsoGroupMapping

pytestmark = pytest.mark.django_db


def test_an_admin_maps_and_unmaps_a_group(client, team):
    client.force_login(team.admin.user)
    page = client.get("/t/acme/sso/")
    assert page.status_code == 200
    assert b"Memberships made by hand" in page.content

    response = client.post("/t/acme/sso/map/", {"group": "Marketing", "role": Role.MARKETER})
    assert response.status_code == 302
    page = client.get("/t/acme/sso/")
    assert b"Members of Marketing get the role marketer" in page.content
    assert SsoGroupMapping.objects.get(tenant=team.tenant).role == Role.MARKETER
    assert AuditEvent.objects.get(action="sso.mapping_set").actor == team.admin.user

    client.post("/t/acme/sso/unmap/", {"group": "marketing"})
    assert not SsoGroupMapping.objects.exists()


def test_bad_input_is_a_form_error(client, team):
    client.force_login(team.admin.user)
    response = client.post("/t/acme/sso/map/", {"group": "  ", "role": "root"})
    assert response.status_code == 422
    assert b"has-error" in response.content
    assert not SsoGroupMapping.objects.exists()


def test_other_roles_and_other_tenants_cannot(client, team, other_team):
    client.force_login(team.operator.user)
    assert client.get("/t/acme/sso/").status_code == 403
    assert client.post("/t/acme/sso/map/", {"group": "x", "role": Role.ADMIN}).status_code == 403
    client.force_login(other_team.admin.user)
    assert client.post("/t/acme/sso/map/", {"group": "x", "role": Role.ADMIN}).status_code == 404
    assert not SsoGroupMapping.objects.exists()
