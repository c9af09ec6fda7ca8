"""Tenant isolation, the role matrix, secrets never rendered, and every form with bad input."""

import pytest
from django.urls import reverse

from dashboard.models import AuditEvent, ConnectionSecret, Membership, Role, VendorConnection
from tests.factories import MembershipFactory, UserFactory, VendorConnectionFactory

pytestmark = pytest.mark.django_db

SECRET = "SUPER-SECRET-VALUE-9876"


def tenant_urls(tenant, connection, membership):
    slug = tenant.slug
    return {
        "tenant_home": ("get", reverse("tenant_home", args=[slug])),
        "connection_list": ("get", reverse("connection_list", args=[slug])),
        "connection_detail": ("get", reverse("connection_detail", args=[slug, connection.pk])),
        "connection_edit": ("get", reverse("connection_edit", args=[slug, connection.pk])),
        "connection_create": ("get", reverse("connection_create", args=[slug])),
        "connection_secret_set": (
            "post",
            reverse("connection_secret_set", args=[slug, connection.pk]),
        ),
        "member_list": ("get", reverse("member_list", args=[slug])),
        "member_add": ("post", reverse("member_add", args=[slug])),
        "member_change_role": ("post", reverse("member_change_role", args=[slug, membership.pk])),
        "member_remove": ("post", reverse("member_remove", args=[slug, membership.pk])),
        "tenant_settings": ("get", reverse("tenant_settings", args=[slug])),
        "audit_list": ("get", reverse("audit_list", args=[slug])),
    }


def test_user_of_tenant_a_gets_404_on_every_tenant_b_url(team, other_team):
    connection = VendorConnectionFactory(tenant=other_team.tenant)
    urls = tenant_urls(other_team.tenant, connection, other_team.marketer)
    client = team.client_for("admin")  # the most powerful role of tenant A
    for name, (method, url) in urls.items():
        response = getattr(client, method)(url)
        assert response.status_code == 404, name
        assert other_team.tenant.name not in response.content.decode(), name


def test_object_of_another_tenant_is_404_even_under_own_tenant_slug(team, other_team):
    foreign = VendorConnectionFactory(tenant=other_team.tenant)
    client = team.client_for("admin")
    response = client.get(reverse("connection_detail", args=[team.tenant.slug, foreign.pk]))
    assert response.status_code == 404
    foreign_member = other_team.marketer
    response = client.post(reverse("member_remove", args=[team.tenant.slug, foreign_member.pk]))
    assert response.status_code == 404
    assert Membership.objects.filter(pk=foreign_member.pk).exists()


MANAGE_ONLY = {
    "connection_edit",
    "connection_create",
    "connection_secret_set",
    "member_add",
    "member_change_role",
    "member_remove",
    "tenant_settings",
}
AUDIT = {"audit_list"}


@pytest.mark.parametrize("role", [Role.MARKETER, Role.OPERATOR, Role.AUDITOR, Role.ADMIN])
def test_role_matrix(team, role):
    connection = VendorConnectionFactory(tenant=team.tenant)
    client = team.client_for(role)
    target = MembershipFactory(tenant=team.tenant, role=Role.MARKETER)
    for name, (method, url) in tenant_urls(team.tenant, connection, target).items():
        response = getattr(client, method)(url)
        allowed = (
            role == Role.ADMIN
            or (name in AUDIT and role == Role.AUDITOR)
            or (name not in MANAGE_ONLY and name not in AUDIT)
        )
        if allowed:
            assert response.status_code in (200, 302, 400), (role, name, response.status_code)
        else:
            assert response.status_code == 403, (role, name, response.status_code)


def test_anonymous_user_is_sent_to_login(team):
    response = (
        pytest.importorskip("django.test")
        .Client()
        .get(reverse("tenant_home", args=[team.tenant.slug]))
    )
    assert response.status_code == 302
    assert reverse("login") in response["Location"]


def test_secrets_never_appear_in_pages_or_audit(team):
    client = team.client_for("admin")
    response = client.post(
        reverse("connection_create", args=[team.tenant.slug]),
        {
            "kind": "optimove_campaigns",
            "name": "Opti",
            "base_url": "https://opti.example.com/v1",
            "api_key": SECRET,
            "brand_key": SECRET + "-BRAND",
        },
    )
    assert response.status_code == 302
    connection = VendorConnection.objects.get(name="Opti")
    client.post(
        reverse("connection_secret_set", args=[team.tenant.slug, connection.pk]),
        {"name": "api_key", "value": SECRET + "-NEW"},
    )
    pages = [
        reverse("tenant_home", args=[team.tenant.slug]),
        reverse("connection_list", args=[team.tenant.slug]),
        reverse("connection_detail", args=[team.tenant.slug, connection.pk]),
        reverse("connection_edit", args=[team.tenant.slug, connection.pk]),
        reverse("audit_list", args=[team.tenant.slug]),
        reverse("admin:dashboard_auditevent_changelist"),
    ]
    team.admin.user.is_staff = team.admin.user.is_superuser = True
    team.admin.user.save()
    for url in pages:
        body = client.get(url).content.decode()
        assert SECRET not in body, url
    # Only the last 4 characters are shown.
    assert "••••-NEW"[-4:] in client.get(pages[2]).content.decode()
    for event in AuditEvent.objects.all():
        assert SECRET not in str(event.summary) and SECRET not in event.actor_label
    assert ConnectionSecret.objects.filter(connection=connection).count() == 2


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (
            {"kind": "optimove_batch", "name": "A", "base_url": "not a url", "api_key": "k" * 10},
            "base_url",
        ),
        (
            {
                "kind": "optimove_batch",
                "name": "A",
                "base_url": "ftp://host/x",
                "api_key": "k" * 10,
            },
            "base_url",
        ),
        (
            {
                "kind": "optimove_batch",
                "name": "A",
                "base_url": "https://h.example.com",
                "api_key": "",
            },
            "api_key",
        ),
        (
            {
                "kind": "optimove_batch",
                "name": "A",
                "base_url": "https://h.example.com",
                "api_key": "   ",
            },
            "api_key",
        ),
        (
            {
                "kind": "optimove_campaigns",
                "name": "A",
                "base_url": "https://h.example.com",
                "api_key": "k" * 10,
            },
            "brand_key",
        ),
        (
            {
                "kind": "salesforce",
                "name": "A",
                "base_url": "https://h.example.com",
                "api_key": "k" * 10,
            },
            "kind",
        ),
        (
            {
                "kind": "altcraft",
                "name": "",
                "base_url": "https://h.example.com",
                "token": "t" * 10,
            },
            "name",
        ),
        (
            {
                "kind": "altcraft",
                "name": "A",
                "base_url": "https://h.example.com",
                "token": "t" * 10,
                "options": "[1,2",
            },
            "options",
        ),
    ],
)
def test_connection_form_bad_input_saves_nothing(team, data, field):
    client = team.client_for("admin")
    events_before = AuditEvent.objects.count()
    response = client.post(reverse("connection_create", args=[team.tenant.slug]), data)
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert VendorConnection.objects.count() == 0
    assert ConnectionSecret.objects.count() == 0
    assert AuditEvent.objects.count() == events_before
    assert "k" * 10 not in response.content.decode()


def test_connection_edit_bad_url_changes_nothing(team):
    connection = VendorConnectionFactory(tenant=team.tenant, base_url="https://good.example.com")
    response = team.client_for("admin").post(
        reverse("connection_edit", args=[team.tenant.slug, connection.pk]),
        {"name": "x", "base_url": "javascript:alert(1)"},
    )
    assert response.status_code == 200
    connection.refresh_from_db()
    assert connection.base_url == "https://good.example.com"


def test_empty_secret_is_refused(team):
    connection = VendorConnectionFactory(tenant=team.tenant)
    before = ConnectionSecret.objects.get(connection=connection).encrypted_value
    response = team.client_for("admin").post(
        reverse("connection_secret_set", args=[team.tenant.slug, connection.pk]),
        {"name": "api_key", "value": "  "},
        follow=True,
    )
    assert "The secret was not changed" in response.content.decode()
    assert ConnectionSecret.objects.get(connection=connection).encrypted_value == before


def test_secret_name_not_of_this_kind_is_refused(team):
    connection = VendorConnectionFactory(tenant=team.tenant)
    response = team.client_for("admin").post(
        reverse("connection_secret_set", args=[team.tenant.slug, connection.pk]),
        {"name": "token", "value": "abcdefgh"},
        follow=True,
    )
    assert "The secret was not changed" in response.content.decode()
    assert not ConnectionSecret.objects.filter(connection=connection, name="token").exists()


def test_member_add_with_unknown_role_or_user(team):
    client = team.client_for("admin")
    UserFactory(username="newbie")
    response = client.post(
        reverse("member_add", args=[team.tenant.slug]), {"username": "newbie", "role": "superuser"}
    )
    assert response.status_code == 400
    assert "role" in response.context["add_form"].errors
    response = client.post(
        reverse("member_add", args=[team.tenant.slug]), {"username": "ghost", "role": "marketer"}
    )
    assert response.status_code == 400
    assert "username" in response.context["add_form"].errors
    assert not Membership.objects.filter(user__username__in=["newbie", "ghost"]).exists()


def test_member_role_change_is_audited_and_bad_role_refused(team):
    client = team.client_for("admin")
    client.post(
        reverse("member_change_role", args=[team.tenant.slug, team.marketer.pk]),
        {"role": "operator"},
    )
    team.marketer.refresh_from_db()
    assert team.marketer.role == Role.OPERATOR
    event = AuditEvent.objects.filter(action="member.role_changed").get()
    assert event.summary == {"user": "mia", "from": "marketer", "to": "operator"}
    assert event.actor_label == "ada"
    client.post(
        reverse("member_change_role", args=[team.tenant.slug, team.marketer.pk]), {"role": "god"}
    )
    team.marketer.refresh_from_db()
    assert team.marketer.role == Role.OPERATOR


def test_last_admin_cannot_be_removed(team):
    client = team.client_for("admin")
    response = client.post(
        reverse("member_remove", args=[team.tenant.slug, team.admin.pk]), follow=True
    )
    assert "at least one admin" in response.content.decode()
    assert Membership.objects.filter(pk=team.admin.pk).exists()


def test_settings_form_bad_input(team):
    client = team.client_for("admin")
    response = client.post(
        reverse("tenant_settings", args=[team.tenant.slug]),
        {"approval_valid_minutes": "0", "duplicate_window_minutes": "abc"},
    )
    assert response.status_code == 200
    assert response.context["form"].errors.keys() >= {
        "approval_valid_minutes",
        "duplicate_window_minutes",
    }
    team.tenant.refresh_from_db()
    assert team.tenant.approval_valid_minutes == 120


def test_settings_change_is_audited(team):
    client = team.client_for("admin")
    client.post(
        reverse("tenant_settings", args=[team.tenant.slug]),
        {
            "approval_valid_minutes": "60",
            "duplicate_window_minutes": "30",
            "approval_required": "on",
        },
    )
    event = AuditEvent.objects.get(action="tenant.settings_changed")
    assert event.summary["approval_valid_minutes"] == {"from": 120, "to": 60}


def test_audit_page_filters_with_htmx_partial(team):
    client = team.client_for("auditor")
    team.client_for("admin").post(
        reverse("member_change_role", args=[team.tenant.slug, team.marketer.pk]),
        {"role": "operator"},
    )
    response = client.get(
        reverse("audit_list", args=[team.tenant.slug]),
        {"action": "member."},
        headers={"HX-Request": "true"},
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert "member.role_changed" in body
    assert "<html" not in body  # the fragment only


def test_base_layout_sends_csrf_with_htmx_and_loads_nothing_from_a_cdn(team):
    body = (
        team.client_for("marketer")
        .get(reverse("tenant_home", args=[team.tenant.slug]))
        .content.decode()
    )
    assert 'hx-headers=\'{"x-csrftoken": "' in body
    assert "/static/vendor/htmx-2.min.js" in body
    assert "https://" not in body.split("<main>")[0]


def test_tenant_switcher_lists_only_own_tenants(team, other_team):
    MembershipFactory(user=team.marketer.user, tenant=other_team.tenant, role=Role.AUDITOR)
    body = (
        team.client_for("marketer")
        .get(reverse("tenant_home", args=[team.tenant.slug]))
        .content.decode()
    )
    assert "Other Brand (Auditor)" in body
    body = (
        team.client_for("operator")
        .get(reverse("tenant_home", args=[team.tenant.slug]))
        .content.decode()
    )
    assert "Other Brand" not in body


def test_overview_lists_what_needs_a_person(team):
    from tests.factories import RunFactory

    waiting = RunFactory(tenant=team.tenant, state="awaiting_approval")
    unknown = RunFactory(tenant=team.tenant, state="outcome_unknown", needs_person=True)
    reconciling = RunFactory(tenant=team.tenant, state="outcome_unknown", needs_person=False)
    body = (
        team.client_for("auditor")
        .get(reverse("tenant_home", args=[team.tenant.slug]))
        .content.decode()
    )
    section = body.split("Needs a person")[1].split("Recent runs")[0]
    assert f"#{waiting.pk}<" in section and f"#{unknown.pk}<" in section
    assert f"#{reconciling.pk}<" not in section


def test_error_reports_never_show_a_posted_secret(team, monkeypatch, rf):
    """If saving a connection blew up, Django's error report (500 page, admin mail) would list the
    POST data and every frame's variables: the secret must not be among them."""
    from django.views.debug import ExceptionReporter

    from dashboard.tenancy import services as dashboard_services
    from dashboard.tenancy import views

    real_encrypt = dashboard_services.encrypt_secret

    def broken_encrypt(plaintext):
        real_encrypt(plaintext)
        raise RuntimeError("disk full")

    monkeypatch.setattr(dashboard_services, "encrypt_secret", broken_encrypt)
    request = rf.post(
        reverse("connection_create", args=[team.tenant.slug]),
        {
            "kind": "optimove_batch",
            "name": "Boom",
            "base_url": "https://x.example.com",
            "api_key": SECRET,
        },
    )
    request.user = team.admin.user
    request.session = {}
    request.htmx = False
    with pytest.raises(RuntimeError) as raised:
        views.connection_create(request, tenant_slug=team.tenant.slug)
    report = ExceptionReporter(request, raised.type, raised.value, raised.tb).get_traceback_text()
    assert "disk full" in report
    assert SECRET not in report


# -- issue 9, items 15 and 17: the smaller UI fixes ------------------------------------------


def test_the_talkifai_connection_form_has_no_optimove_key_role(team):
    talkifai = VendorConnectionFactory(tenant=team.tenant, kind="talkifai")
    optimove = VendorConnectionFactory(tenant=team.tenant, kind="optimove_batch")
    client = team.client_for("admin")
    talkifai_form = client.get(reverse("connection_edit", args=["acme", talkifai.pk]))
    optimove_form = client.get(reverse("connection_edit", args=["acme", optimove.pk]))
    assert 'name="key_role"' not in talkifai_form.content.decode()
    assert 'name="key_role"' in optimove_form.content.decode()
    # The new-connection form marks each vendor-specific field with the kinds it belongs to.
    create = client.get(reverse("connection_create", args=["acme"])).content.decode()
    assert 'data-kinds="optimove_batch"' in create


def test_the_connection_page_says_its_times_are_utc(team):
    from dashboard.clock import utc_now

    connection = VendorConnectionFactory(
        tenant=team.tenant, last_success_at=utc_now(), last_error="boom", last_error_at=utc_now()
    )
    page = team.client_for("auditor").get(
        reverse("connection_detail", args=["acme", connection.pk])
    )
    content = page.content.decode()
    now = utc_now()
    assert f"{now:%Y-%m-%d} " in content
    assert content.count(" UTC") >= 2  # last success, last error
    assert "p.m." not in content and "a.m." not in content


def test_the_overview_needs_a_person_list_refreshes_itself(team):
    from tests.factories import RunFactory

    client = team.client_for("auditor")
    url = reverse("tenant_home", args=["acme"])
    full = client.get(url).content.decode()
    assert 'id="needs-a-person"' in full and 'hx-trigger="every 10s"' in full
    assert "Nothing is waiting for anyone." in full
    RunFactory(tenant=team.tenant, requested_by=team.marketer.user)
    fragment = client.get(url, HTTP_HX_REQUEST="true")
    content = fragment.content.decode()
    assert content.lstrip().startswith('<section class="card" id="needs-a-person"')
    assert "requested by mia" in content and "<html" not in content
    assert "HX-Request" in fragment["Vary"]


def test_a_history_restore_gets_the_whole_list_page(team):
    # htmx asks for a page it has no copy of with HX-Request: it must get the page, not the
    # fragment, or Back shows a bare table.
    headers = {"HTTP_HX_REQUEST": "true", "HTTP_HX_HISTORY_RESTORE_REQUEST": "true"}
    client = team.client_for("auditor")
    for name in ("run_list", "audit_list"):
        content = client.get(reverse(name, args=["acme"]), **headers).content.decode()
        assert "<html" in content and 'class="row filters"' in content, name


def test_login_form_labels_its_boxes(client):
    content = client.get(reverse("login")).content.decode()
    assert '<label for="id_username">Username</label>' in content
    assert '<label for="id_password">Password</label>' in content


def test_settings_checkboxes_sit_inside_their_labels(team):
    content = team.client_for("admin").get(reverse("tenant_settings", args=["acme"])).content
    content = content.decode()
    assert '<label class="check" for="id_approval_required"><input type="checkbox"' in content


def test_every_page_has_the_favicon_and_the_script(team):
    content = team.client_for("auditor").get(reverse("tenant_home", args=["acme"])).content
    content = content.decode()
    assert 'rel="icon" href="/static/img/favicon.svg"' in content
    assert 'src="/static/js/app.js"' in content
    assert 'id="offline-banner"' in content


def test_test_connection_is_for_admins_only(team, sandbox_connection, sandboxes):
    connection = sandbox_connection(team.tenant, "talkifai")
    url = reverse("connection_test", args=[team.tenant.slug, connection.pk])
    for role in (Role.MARKETER, Role.OPERATOR, Role.AUDITOR):
        assert team.client_for(role).post(url).status_code == 403, role
    assert sandboxes["talkifai"].received == []
    assert not AuditEvent.objects.filter(action="connection.tested").exists()


def test_test_connection_shows_the_result_in_place_and_audits_it(
    team, sandbox_connection, sandboxes
):
    connection = sandbox_connection(team.tenant, "altcraft")
    client = team.client_for("admin")
    page = client.get(reverse("connection_detail", args=[team.tenant.slug, connection.pk]))
    assert 'hx-post="' + reverse("connection_test", args=[team.tenant.slug, connection.pk]) in (
        page.content.decode()
    )

    response = client.post(
        reverse("connection_test", args=[team.tenant.slug, connection.pk]), HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="connection-test"')
    assert "passed" in html and "API token accepted" in html
    assert "sandbox-altcraft-token" not in html
    event = AuditEvent.objects.get(action="connection.tested")
    assert event.summary["result"] == "ok"
    assert "token accepted" in event.summary["checked"]
    assert "sandbox-altcraft-token" not in str(event.summary)


def test_test_connection_without_htmx_says_why_it_failed_on_the_page(team, sandbox_connection):
    connection = sandbox_connection(
        team.tenant, "talkifai", secret_values={"api_key": "wrong-key-5678"}
    )
    client = team.client_for("admin")

    response = client.post(
        reverse("connection_test", args=[team.tenant.slug, connection.pk]), follow=True
    )

    html = response.content.decode()
    assert "Connection test failed" in html and "401" in html
    assert "wrong-key-5678" not in html
    event = AuditEvent.objects.get(action="connection.tested")
    assert event.summary["result"] == "failed"
    assert "wrong-key-5678" not in str(event.summary)


def test_the_test_connection_button_is_not_shown_to_non_admins(team):
    connection = VendorConnectionFactory(tenant=team.tenant)
    page = team.client_for(Role.OPERATOR).get(
        reverse("connection_detail", args=[team.tenant.slug, connection.pk])
    )
    assert "Test connection" not in page.content.decode()
