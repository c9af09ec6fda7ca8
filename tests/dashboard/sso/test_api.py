"""The SSO group endpoints: list, set and remove mappings; admins only; bad input as problems."""

from __future__ import annotations

import pytest

from dashboard.models import AuditEvent
from dashboard.sso.models import SsoGroupMapping

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]


@pytest.fixture(autouse=True)
def _roomy_rate_limits(settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 6000
    settings.API_RATE_LIMIT_BURST = 1000


def test_an_admin_sets_lists_and_removes_a_mapping(team, make_token):
    _, client = make_token("admin", name="idm-bot")
    response = client.post("sso-groups", {"group": "Ops", "role": "operator"})
    assert response.status_code == 200, response.content
    assert response.json()["created_by"] == "ada via API token “idm-bot”"
    assert [m["group"] for m in client.get("sso-groups").json()] == ["Ops"]

    assert client.post("sso-groups/remove", {"group": "ops"}).status_code == 204
    assert not SsoGroupMapping.objects.exists()
    actions = list(
        AuditEvent.objects.filter(action__startswith="sso.")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["sso.mapping_set", "sso.mapping_removed"]


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"group": "", "role": "admin"}, 422, "required"),
        ({"group": "ops", "role": "root"}, 422, "invalid_role"),
        ({"group": "ops"}, 422, None),
        ({"group": "ops", "role": "admin", "extra": 1}, 422, None),
    ],
)
def test_bad_input_is_a_problem_and_changes_nothing(team, make_token, payload, status, code):
    _, client = make_token("admin")
    response = client.post("sso-groups", payload)
    assert response.status_code == status, response.content
    assert response.headers["Content-Type"].startswith("application/problem+json")
    if code:
        assert response.json()["code"] == code
    assert not SsoGroupMapping.objects.exists()


def test_removing_an_unmapped_group_is_a_404(team, make_token):
    _, client = make_token("admin")
    response = client.post("sso-groups/remove", {"group": "nope"})
    assert response.status_code == 404
    assert response.json()["code"] == "sso_group_not_found"


@pytest.mark.parametrize("role", ["operator", "marketer", "auditor"])
def test_only_admins_see_or_change_the_mapping(team, make_token, role):
    _, client = make_token(role)
    assert client.get("sso-groups").status_code == 403
    assert client.post("sso-groups", {"group": "ops", "role": "admin"}).status_code == 403
    assert not SsoGroupMapping.objects.exists()
